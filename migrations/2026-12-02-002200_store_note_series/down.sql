-- The note series the migration gave the main store stay: the previous version does not read
-- them (it issues every note on the settings' series).
SELECT 1;
