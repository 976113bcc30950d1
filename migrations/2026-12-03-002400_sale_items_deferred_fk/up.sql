-- A sale's lines are written before its series' counter is taken, so the sales of one series,
-- which run one at a time from the counter to the commit, hold it for the sale's row alone
-- (issue 16's hot path; docs/benchmarks.md). The lines' reference to their sale is checked at
-- commit, when the sale's row is there.
ALTER TABLE sale_items ALTER CONSTRAINT sale_items_sale_id_fkey DEFERRABLE INITIALLY DEFERRED;
