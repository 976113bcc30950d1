-- The attempt (task_id:lease token, the holder of the lock sale:<id>) that moved the sale to
-- SENDING. Only that attempt's answer may move it out: finish_send is one UPDATE conditional on
-- sunat_status = 'SENDING' and this marker, so a second or late answer changes nothing.
ALTER TABLE sales ADD COLUMN sunat_send_marker TEXT;
