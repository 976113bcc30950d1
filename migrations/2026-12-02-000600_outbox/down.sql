DROP TABLE faena_outbox;
