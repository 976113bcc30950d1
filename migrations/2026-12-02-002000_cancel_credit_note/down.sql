ALTER TABLE credit_notes DROP COLUMN send_task_id;
-- A cancellation made with a credit note keeps its note (in credit_notes, with its sale); the
-- cancellation reads as one SUNAT had nothing to void, which the previous version can show.
ALTER TABLE sale_cancellations DROP CONSTRAINT sale_cancellations_note_of_action;
ALTER TABLE sale_cancellations DROP CONSTRAINT sale_cancellations_state_of_action;
UPDATE sale_cancellations SET sunat_action = 'NONE' WHERE sunat_action = 'CREDIT_NOTE';
ALTER TABLE sale_cancellations DROP COLUMN credit_note_id;
ALTER TABLE sale_cancellations ADD CONSTRAINT sale_cancellations_state_of_action
    CHECK ((sunat_action = 'NONE') = (sunat_state = 'NONE'));
ALTER TABLE sale_cancellations DROP CONSTRAINT sale_cancellations_sunat_action_check;
ALTER TABLE sale_cancellations ADD CONSTRAINT sale_cancellations_sunat_action_check
    CHECK (sunat_action IN ('NONE', 'BAJA', 'RESUMEN'));
