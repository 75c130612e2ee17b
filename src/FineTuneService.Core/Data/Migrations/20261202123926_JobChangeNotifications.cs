using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <summary>
    /// Every change to a job, its events or its checkpoints sends <c>NOTIFY fts_job_changes</c> with the job id, from
    /// whichever host or SQL session made it, so the API can cache what tenants poll and forget it the moment it
    /// changes. The payload is <c>&lt;job id&gt;</c>, with <c>|status</c> appended when a job's status changed (queue
    /// positions of other jobs move then).
    /// </summary>
    public partial class JobChangeNotifications : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                CREATE FUNCTION fts_notify_job_change() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE
                    job_id text;
                    status_changed boolean := false;
                BEGIN
                    IF TG_TABLE_NAME = 'fine_tuning_jobs' THEN
                        job_id := COALESCE(NEW."Id", OLD."Id");
                        status_changed := TG_OP <> 'UPDATE' OR OLD."Status" IS DISTINCT FROM NEW."Status";
                    ELSE
                        job_id := COALESCE(NEW."JobId", OLD."JobId");
                    END IF;
                    PERFORM pg_notify('fts_job_changes', job_id || CASE WHEN status_changed THEN '|status' ELSE '' END);
                    RETURN NULL;
                END $$;

                CREATE TRIGGER fts_job_changes AFTER INSERT OR UPDATE OR DELETE ON fine_tuning_jobs
                    FOR EACH ROW EXECUTE FUNCTION fts_notify_job_change();
                CREATE TRIGGER fts_job_changes AFTER INSERT OR UPDATE OR DELETE ON fine_tuning_job_events
                    FOR EACH ROW EXECUTE FUNCTION fts_notify_job_change();
                CREATE TRIGGER fts_job_changes AFTER INSERT OR UPDATE OR DELETE ON fine_tuning_job_checkpoints
                    FOR EACH ROW EXECUTE FUNCTION fts_notify_job_change();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER fts_job_changes ON fine_tuning_job_checkpoints;
                DROP TRIGGER fts_job_changes ON fine_tuning_job_events;
                DROP TRIGGER fts_job_changes ON fine_tuning_jobs;
                DROP FUNCTION fts_notify_job_change();
                """);
        }
    }
}
