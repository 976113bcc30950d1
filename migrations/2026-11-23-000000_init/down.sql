DROP TABLE faena_meta;
