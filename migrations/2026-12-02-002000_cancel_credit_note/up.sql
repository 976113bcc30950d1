-- Issue 15: cancelling an ACCEPTED sale past SUNAT's voiding window issues a whole credit note
-- (catálogo 09 code 01, anulación de la operación) in the cancelling transaction. The
-- cancellation's route is then CREDIT_NOTE and it names its note; its SUNAT state is the note's
-- own (`credit_notes.sunat_status`), so `sunat_state` stays NONE, as for a cancellation SUNAT
-- needs no summary for: QUEUED/CARRIED/VOIDED/FAILED belong to the summary routes (BAJA,
-- RESUMEN), which the nightly build reads. Existing rows are not changed.
ALTER TABLE sale_cancellations DROP CONSTRAINT sale_cancellations_sunat_action_check;
ALTER TABLE sale_cancellations ADD CONSTRAINT sale_cancellations_sunat_action_check
    CHECK (sunat_action IN ('NONE', 'BAJA', 'RESUMEN', 'CREDIT_NOTE'));
ALTER TABLE sale_cancellations ADD COLUMN credit_note_id BIGINT REFERENCES credit_notes (id);
ALTER TABLE sale_cancellations DROP CONSTRAINT sale_cancellations_state_of_action;
ALTER TABLE sale_cancellations ADD CONSTRAINT sale_cancellations_state_of_action
    CHECK ((sunat_action IN ('NONE', 'CREDIT_NOTE')) = (sunat_state = 'NONE'));
ALTER TABLE sale_cancellations ADD CONSTRAINT sale_cancellations_note_of_action
    CHECK ((sunat_action = 'CREDIT_NOTE') = (credit_note_id IS NOT NULL));

-- The send job last queued for a credit note (a sale's is in sale_send_jobs), so the
-- rescue_unsent_sales sweep can tell a note nobody sends from one whose job waits.
ALTER TABLE credit_notes ADD COLUMN send_task_id TEXT;
