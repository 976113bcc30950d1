-- Per sendBill call, a fingerprint of the SUNAT settings it was made with (SunatConfig::fingerprint:
-- a SHA-256, never the secrets). The retry sweep resends a SOL login failure (0101-0106, 0111) only
-- once the settings' fingerprint differs from the one the failure was recorded with.
ALTER TABLE sunat_submissions ADD COLUMN settings_fingerprint TEXT;
