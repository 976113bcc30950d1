ALTER TABLE sunat_submissions DROP COLUMN settings_fingerprint;
