DROP TABLE credit_note_items;
DROP TABLE credit_notes;
