DROP TABLE periodic_tasks;
