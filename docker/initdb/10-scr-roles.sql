-- Run once by the postgres image when its data volume is new (docker-entrypoint-initdb.d).
-- scr_owner owns the database and runs the migrations (the `migrate` service). scr_app is what
-- the API connects as: it reads and writes rows but cannot change the schema or drop a trigger,
-- and migration 0003 (run with SCR_DB_APP_ROLE=scr_app) narrows it to SELECT and INSERT on the
-- audit trail. Passwords come from the db container's environment, never from this file.
\set ON_ERROR_STOP on
\getenv owner_password DB_OWNER_PASSWORD
\getenv app_password DB_APP_PASSWORD

CREATE ROLE scr_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE scr_app LOGIN PASSWORD :'app_password';
CREATE DATABASE scr OWNER scr_owner;
REVOKE ALL ON DATABASE scr FROM PUBLIC;
GRANT CONNECT ON DATABASE scr TO scr_app;

\connect scr
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO scr_app;
-- Rows only, on every table the owner's migrations create; no TRUNCATE, REFERENCES or TRIGGER.
ALTER DEFAULT PRIVILEGES FOR ROLE scr_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO scr_app;
ALTER DEFAULT PRIVILEGES FOR ROLE scr_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO scr_app;
