DELETE FROM periodic_tasks WHERE name = 'rescue-unsent-sales';
DROP TABLE sale_send_jobs;
