-- Issue 17: credit notes are issued on the note series of the store the sale was made in
-- (stores.boleta_note_series / factura_note_series, which 2026-12-02-001700 created with BC01 /
-- FC01 and no note read until now). Every note so far was issued on FAENA_BOLETA_NOTE_SERIES /
-- FAENA_FACTURA_NOTE_SERIES, whatever the store: the main store takes, for each type, the series
-- of the newest existing note of that type, so a deployment that issued notes on other series
-- keeps issuing on them (and never on a new series whose correlatives restart). Without notes it
-- keeps BC01 / FC01, the settings' defaults, which the api replaces from the settings at start
-- while the main store has issued no note of that type (docs/decisions.md). A series another
-- store holds is left alone (series are unique across stores). Other stores keep theirs.
UPDATE stores st SET boleta_note_series = x.series, updated_at = now()
FROM (SELECT n.series FROM credit_notes n JOIN sales s ON s.id = n.sale_id
      WHERE s.doc_type = '03' ORDER BY n.id DESC LIMIT 1) x
WHERE st.establishment_code = '0000' AND st.boleta_note_series <> x.series
  AND x.series <> st.boleta_series
  AND NOT EXISTS (SELECT 1 FROM stores o WHERE o.id <> st.id AND x.series IN
                  (o.boleta_series, o.factura_series, o.boleta_note_series, o.factura_note_series));

UPDATE stores st SET factura_note_series = x.series, updated_at = now()
FROM (SELECT n.series FROM credit_notes n JOIN sales s ON s.id = n.sale_id
      WHERE s.doc_type = '01' ORDER BY n.id DESC LIMIT 1) x
WHERE st.establishment_code = '0000' AND st.factura_note_series <> x.series
  AND x.series <> st.factura_series
  AND NOT EXISTS (SELECT 1 FROM stores o WHERE o.id <> st.id AND x.series IN
                  (o.boleta_series, o.factura_series, o.boleta_note_series, o.factura_note_series));
