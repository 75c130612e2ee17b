-- FineTuneService's two database roles (run once per database, as a superuser, with psql):
--   psql -v migrator=fts_migrator -v migrator_password=... -v app=fts_app -v app_password=... -d fts -f roles.sql
-- The migrator owns the schema: it applies EF Core migrations and installs Hangfire's tables (the API's
-- ConnectionStrings:PostgresMigrations). The runtime role (ConnectionStrings:Postgres of the API and every worker)
-- may read and write rows and nothing else: no DDL, no ownership, no superuser.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'migrator', :'migrator_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'migrator') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app', :'app_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec

SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'migrator') \gexec
ALTER SCHEMA public OWNER TO :"migrator";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"app";
GRANT USAGE ON SCHEMA public TO :"app";

-- Whatever the migrator creates later (EF tables, the hangfire schema and its tables) is usable by the runtime role.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" GRANT USAGE ON SCHEMAS TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" GRANT EXECUTE ON FUNCTIONS TO :"app";
