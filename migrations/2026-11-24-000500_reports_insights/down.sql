DROP TABLE insights;
DROP TABLE reports;
