-- The send job last enqueued for each sale (through the outbox or directly): the sweep of unsent
-- sales reads its state to tell a sale waiting for its job from one nobody will send. No foreign key:
-- a new sale writes this row before its own (in the same transaction, ahead of the series lock),
-- and sales are never deleted.
CREATE TABLE sale_send_jobs (
    sale_id BIGINT PRIMARY KEY,
    task_id TEXT NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO periodic_tasks (name, kind, cron, description) VALUES
    ('rescue-unsent-sales', 'rescue_unsent_sales', '0 */10 * * * *',
     'Every 10 minutes: send PENDING sales nobody is sending, take back SENDING sales whose send stopped');
