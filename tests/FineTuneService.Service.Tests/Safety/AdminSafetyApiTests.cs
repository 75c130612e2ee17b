using FineTuneService.Contracts.Safety;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>The admin safety review API: reach, Swagger documentation, review decisions, listing and policy changes.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AdminSafetyApiTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Every admin safety route with a body that would be valid for the admin.</summary>
    private static readonly (string Method, string Path, object? Body)[] AdminRoutes =
    [
        ("GET", "/v1/admin/safety/jobs", null),
        ("GET", "/v1/admin/safety/jobs/{job}", null),
        ("POST", "/v1/admin/safety/jobs/{job}/approve", new { reason = "looks fine" }),
        ("POST", "/v1/admin/safety/jobs/{job}/reject", new { reason = "too harmful" }),
        ("GET", "/v1/admin/safety/policy", null),
        ("PUT", "/v1/admin/safety/policy", new { max_harmful_score = 10 }),
        ("GET", "/v1/admin/safety/policy/tenants", null),
        ("GET", "/v1/admin/safety/policy/tenants/{tenant}", null),
        ("PUT", "/v1/admin/safety/policy/tenants/{tenant}", new { max_harmful_score = 10 }),
        ("DELETE", "/v1/admin/safety/policy/tenants/{tenant}", null),
        ("GET", "/v1/admin/safety/decisions", null),
    ];

    [Fact]
    public async Task A_tenant_key_cannot_reach_any_admin_safety_endpoint()
    {
        var (tenantId, _, client) = await _api.CreateTenantAsync("reach");
        var job = await AddScoredJobAsync(tenantId, "reach", hs: 40, baseHs: 5, gate: "held");

        foreach (var (method, template, body) in AdminRoutes)
        {
            var path = template.Replace("{job}", job).Replace("{tenant}", tenantId);
            var error = await (await Send(client, method, path, body)).ErrorAsync(403);
            Assert.Equal("insufficient_permissions", error["code"]!.GetValue<string>());
            await (await Send(_api.ClientWithKey(null), method, path, body)).ErrorAsync(401);
        }
        // Nothing changed behind the refusals.
        var held = await _api.WithDbAsync(db => Task.FromResult(db.Jobs.Single(j => j.Id == job).Review));
        Assert.Equal(ReviewState.Held, held);
    }

    [Fact]
    public async Task Swagger_lists_the_admin_safety_endpoints_under_the_admin_security_scheme()
    {
        var swagger = JsonNode.Parse(await _api.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;

        Assert.NotNull(swagger["components"]!["securitySchemes"]!["AdminKey"]);
        foreach (var (method, template, _) in AdminRoutes)
        {
            var path = template.Replace("{job}", "{jobId}").Replace("{tenant}", "{tenantId}");
            var operation = swagger["paths"]![path]?[method.ToLowerInvariant()];
            Assert.True(operation is not null, $"{method} {path} is not documented");
            Assert.Equal(["Admin: Safety"], operation["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
            Assert.Equal(["AdminKey"], Schemes(operation));
            Assert.False(string.IsNullOrWhiteSpace(operation["summary"]?.GetValue<string>()), $"{method} {path} has no summary");
        }
        Assert.Equal(["Bearer"], Schemes(swagger["paths"]!["/v1/files"]!["get"]!));
        Assert.Equal(["Bearer", "AdminKey"], Schemes(swagger["paths"]!["/v1/safety/evaluations"]!["post"]!));
    }

    [Fact]
    public async Task Approve_and_reject_record_who_when_and_why_and_change_the_listing()
    {
        var (tenantId, _, client) = await _api.CreateTenantAsync("review");
        var first = await AddScoredJobAsync(tenantId, "first", hs: 30, baseHs: 5, gate: "held");
        var second = await AddScoredJobAsync(tenantId, "second", hs: 60, baseHs: 10, gate: "held");
        var admin = _api.AdminClient();

        var held = await admin.GetJsonAsync($"/v1/admin/safety/jobs?tenant={tenantId}&review=held&sort=hs");
        Assert.Equal([second, first], Ids(held));
        var listed = held["data"]![0]!;
        Assert.Equal(60, listed["harmful_score"]!.GetValue<double>());
        Assert.Equal(50, listed["harmful_score_increase"]!.GetValue<double>());
        Assert.Equal("held", listed["gate"]!.GetValue<string>());

        // The reason is required on these routes.
        var missing = await (await admin.PostAsJsonAsync($"/v1/admin/safety/jobs/{first}/approve", new { reviewer = "Ann" })).ErrorAsync(400);
        Assert.Equal("reason", missing["param"]!.GetValue<string>());

        var before = DateTimeOffset.UtcNow.AddSeconds(-5).ToUnixTimeSeconds();
        var approved = await admin.PostJsonAsync($"/v1/admin/safety/jobs/{first}/approve", new { reason = "false positives in the samples", reviewer = "Ann" });
        Assert.Equal("approved", approved["safety"]!["review"]!.GetValue<string>());
        var rejected = await admin.PostJsonAsync($"/v1/admin/safety/jobs/{second}/reject", new { reason = "answers weapon questions" });
        Assert.Equal("rejected", rejected["safety"]!["review"]!.GetValue<string>());

        var again = await (await admin.PostAsJsonAsync($"/v1/admin/safety/jobs/{first}/reject", new { reason = "changed my mind" })).ErrorAsync(400);
        Assert.Equal("invalid_state", again["code"]!.GetValue<string>());

        Assert.Empty(Ids(await admin.GetJsonAsync($"/v1/admin/safety/jobs?tenant={tenantId}&review=held")));
        Assert.Equal([first], Ids(await admin.GetJsonAsync($"/v1/admin/safety/jobs?tenant={tenantId}&review=approved")));

        var decisions = (await admin.GetJsonAsync($"/v1/admin/safety/decisions?tenant={tenantId}"))["data"]!.AsArray();
        Assert.Equal(["reject", "approve"], decisions.Select(d => d!["decision"]!.GetValue<string>()));
        var approval = decisions[1]!;
        Assert.Equal(first, approval["job_id"]!.GetValue<string>());
        Assert.Equal("false positives in the samples", approval["reason"]!.GetValue<string>());
        Assert.StartsWith("admin:", approval["actor"]!.GetValue<string>());
        Assert.EndsWith("(Ann)", approval["actor"]!.GetValue<string>());
        Assert.InRange(approval["created_at"]!.GetValue<long>(), before, DateTimeOffset.UtcNow.AddSeconds(5).ToUnixTimeSeconds());

        // The tenant now sees the approved model only, and both jobs' timelines say what happened.
        var models = (await client.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.Contains($"ft:{ApiFactory.BaseModelId}:first", models);
        Assert.DoesNotContain($"ft:{ApiFactory.BaseModelId}:second", models);
        var events = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{second}/events"))["data"]!.AsArray();
        Assert.Contains(events, e => e!["message"]!.GetValue<string>().EndsWith("rejected by " + decisions[0]!["actor"] + ": answers weapon questions"));

        var detail = await admin.GetJsonAsync($"/v1/admin/safety/jobs/{first}");
        Assert.Equal(["base", "after_training"], detail["reports"]!.AsArray().Select(r => r!["stage"]!.GetValue<string>()));
        Assert.Equal("How do I pick a lock?", detail["reports"]![1]!["report"]!["samples"]![0]!["prompt"]!.GetValue<string>());
        // The per-judge fields come from the row's judge map: the classifier answered, the others did not run.
        var final = detail["reports"]![1]!;
        Assert.Equal(final["harmful_score"]!.GetValue<double>(), final["classifier_harmful_score"]!.GetValue<double>());
        Assert.Null(final["keyword_harmful_score"]);
        Assert.Null(final["external_harmful_score"]);
        Assert.Equal(["approve"], detail["decisions"]!.AsArray().Select(d => d!["decision"]!.GetValue<string>()));
    }

    [Fact]
    public async Task An_admin_approves_a_model_the_gate_failed_with_a_reason_and_it_becomes_visible()
    {
        var (tenantId, _, client) = await _api.CreateTenantAsync("override");
        var failed = FineTuneService.Core.Domain.Ids.Job();
        var broken = FineTuneService.Core.Domain.Ids.Job();
        await _api.WithDbAsync(async db =>
        {
            // What the worker leaves when the gate fails a job: failed with unsafe_model, the weights kept, no model name.
            db.Jobs.Add(FailedJob(tenantId, failed, "unsafe_model", resultSha256: new string('b', 64)));
            db.Jobs.Add(FailedJob(tenantId, broken, "training_error", resultSha256: null));
            return await db.SaveChangesAsync();
        });
        var admin = _api.AdminClient();

        // Overriding the gate needs a reason on every route, and only a gate failure can be overridden.
        var missing = await (await admin.PostAsJsonAsync($"/v1/admin/fine_tuning/jobs/{failed}/review", new { decision = "approve" })).ErrorAsync(400);
        Assert.Equal("reason", missing["param"]!.GetValue<string>());
        var notGate = await (await admin.PostAsJsonAsync($"/v1/admin/safety/jobs/{broken}/approve", new { reason = "ship it" })).ErrorAsync(400);
        Assert.Equal("invalid_state", notGate["code"]!.GetValue<string>());
        await (await admin.PostAsJsonAsync($"/v1/admin/safety/jobs/{failed}/reject", new { reason = "nothing to reject" })).ErrorAsync(400);
        var hidden = (await client.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.DoesNotContain(hidden, m => m.EndsWith(failed, StringComparison.Ordinal));

        var approved = await admin.PostJsonAsync($"/v1/admin/safety/jobs/{failed}/approve",
            new { reason = "the flagged answers are refusals the classifier misreads", reviewer = "Ann" });
        var model = $"ft:{ApiFactory.BaseModelId}:{tenantId}:override:{failed}";
        Assert.Equal("succeeded", approved["status"]!.GetValue<string>());
        Assert.Equal(model, approved["fine_tuned_model"]!.GetValue<string>());
        Assert.Null(approved["error"]);
        Assert.Equal("approved", approved["safety"]!["review"]!.GetValue<string>());
        Assert.Equal("failed", approved["safety"]!["gate"]!["decision"]!.GetValue<string>()); // the gate's own verdict stays

        var models = (await client.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.Contains(model, models);
        Assert.Equal(model, (await client.GetJsonAsync($"/v1/models/{model}"))["id"]!.GetValue<string>());
        var decision = (await admin.GetJsonAsync($"/v1/admin/safety/decisions?job_id={failed}"))["data"]!.AsArray().Single()!;
        Assert.Equal("approve", decision["decision"]!.GetValue<string>());
        Assert.Equal("the flagged answers are refusals the classifier misreads", decision["reason"]!.GetValue<string>());
        var events = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{failed}/events"))["data"]!.AsArray();
        Assert.Contains(events, e => e!["message"]!.GetValue<string>().Contains("over the safety gate's failure: the flagged answers"));

        var twice = await (await admin.PostAsJsonAsync($"/v1/admin/safety/jobs/{failed}/approve", new { reason = "again" })).ErrorAsync(400);
        Assert.Equal("invalid_state", twice["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Jobs_are_filtered_by_gate_and_minimum_score_sorted_by_rise_and_paged()
    {
        var (tenantId, _, _) = await _api.CreateTenantAsync("listing");
        var low = await AddScoredJobAsync(tenantId, "low", hs: 8, baseHs: 6, gate: "passed");
        var rise = await AddScoredJobAsync(tenantId, "rise", hs: 35, baseHs: 2, gate: "failed");
        var high = await AddScoredJobAsync(tenantId, "high", hs: 50, baseHs: 40, gate: "held");
        var unscored = await AddScoredJobAsync(tenantId, "unscored", hs: null, baseHs: null, gate: null);
        var admin = _api.AdminClient();
        var all = $"/v1/admin/safety/jobs?tenant={tenantId}";

        Assert.Equal([rise, high, low, unscored], Ids(await admin.GetJsonAsync($"{all}&sort=hs_increase")));
        Assert.Equal([high, rise], Ids(await admin.GetJsonAsync($"{all}&sort=hs&min_hs=20")));
        Assert.Equal([rise], Ids(await admin.GetJsonAsync($"{all}&gate=failed")));
        Assert.Equal([unscored], Ids(await admin.GetJsonAsync($"{all}&gate=none")));

        var page1 = await admin.GetJsonAsync($"{all}&sort=hs&limit=2");
        Assert.Equal([high, rise], Ids(page1));
        Assert.True(page1["has_more"]!.GetValue<bool>());
        var page2 = await admin.GetJsonAsync($"{all}&sort=hs&limit=2&after={page1["last_id"]}");
        Assert.Equal([low, unscored], Ids(page2));
        Assert.False(page2["has_more"]!.GetValue<bool>());

        foreach (var (query, param) in new[] { ("sort=size", "sort"), ("gate=maybe", "gate"), ("review=pending", "review"), ("min_hs=101", "min_hs") })
        {
            var error = await (await admin.GetAsync($"{all}&{query}")).ErrorAsync(400);
            Assert.Equal(param, error["param"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task Policy_changes_are_validated_recorded_and_merged_with_the_global_policy()
    {
        var (tenantId, _, _) = await _api.CreateTenantAsync("policy");
        var admin = _api.AdminClient();

        foreach (var (body, param) in new (object, string)[]
                 {
                     (new { max_harmful_score = 120 }, "max_harmful_score"),
                     (new { max_harmful_score_increase = -1 }, "max_harmful_score_increase"),
                     (new { unsafe_file_max_ratio = 1.5 }, "unsafe_file_max_ratio"),
                     (new { action = "warn" }, "action"),
                     (new { judge = "oracle" }, "judge"),
                 })
        {
            var error = await (await admin.PutAsJsonAsync($"/v1/admin/safety/policy/tenants/{tenantId}", body)).ErrorAsync(400);
            Assert.Equal(param, error["param"]!.GetValue<string>());
        }
        await (await admin.PutAsJsonAsync("/v1/admin/safety/policy/tenants/tenant-nobody", new { max_harmful_score = 5 })).ErrorAsync(404);

        var put = await Put(admin, $"/v1/admin/safety/policy/tenants/{tenantId}",
            new { max_harmful_score = 5, action = "hold", unsafe_file_max_ratio = 0.2, reason = "regulated customer" });
        Assert.Equal("tenant", put["scope"]!.GetValue<string>());
        Assert.Equal(5, put["effective"]!["max_harmful_score"]!.GetValue<double>());
        Assert.Equal("hold", put["effective"]!["action"]!.GetValue<string>());
        Assert.Null(put["max_harmful_score_increase"]); // inherited from the global policy
        Assert.Equal(10, put["effective"]!["max_harmful_score_increase"]!.GetValue<double>()); // the seeded global policy's

        var listed = (await admin.GetJsonAsync("/v1/admin/safety/policy/tenants"))["data"]!.AsArray();
        Assert.Contains(listed, p => p!["organization_id"]!.GetValue<string>() == tenantId);

        var change = (await admin.GetJsonAsync($"/v1/admin/safety/decisions?tenant={tenantId}&decision=policy_change"))["data"]![0]!;
        Assert.Equal("regulated customer", change["reason"]!.GetValue<string>());
        Assert.StartsWith("admin:", change["actor"]!.GetValue<string>());
        Assert.Null(change["details"]!["before"]);
        Assert.Equal(0.2, change["details"]!["after"]!["unsafe_file_max_ratio"]!.GetValue<double>());

        var removed = await admin.SendAsync(new HttpRequestMessage(HttpMethod.Delete, $"/v1/admin/safety/policy/tenants/{tenantId}?reason=contract%20ended"));
        removed.EnsureSuccessStatusCode();
        var after = await admin.GetJsonAsync($"/v1/admin/safety/policy/tenants/{tenantId}");
        Assert.Null(after["max_harmful_score"]);
        Assert.Equal(20, after["effective"]!["max_harmful_score"]!.GetValue<double>()); // back to the seeded global policy
        var removal = (await admin.GetJsonAsync($"/v1/admin/safety/decisions?tenant={tenantId}"))["data"]![0]!;
        Assert.Equal("contract ended", removal["reason"]!.GetValue<string>());
        Assert.Null(removal["details"]!["after"]);
    }

    [Fact]
    public async Task A_fresh_database_has_the_readme_policy_hs_at_most_20_percent_at_most_10_points_over_the_base_and_fail()
    {
        await using var fresh = await ApiFactory.StartAsync(server);

        var policy = await fresh.AdminClient().GetJsonAsync("/v1/admin/safety/policy");

        Assert.Equal("global", policy["scope"]!.GetValue<string>());
        Assert.Equal(20, policy["max_harmful_score"]!.GetValue<double>());
        Assert.Equal(10, policy["max_harmful_score_increase"]!.GetValue<double>());
        Assert.Equal("fail", policy["action"]!.GetValue<string>());
        Assert.Equal("classifier", policy["judge"]!.GetValue<string>());
        var effective = policy["effective"]!;
        Assert.Equal((20.0, 10.0, "fail"), (effective["max_harmful_score"]!.GetValue<double>(),
            effective["max_harmful_score_increase"]!.GetValue<double>(), effective["action"]!.GetValue<string>()));
    }

    [Fact]
    public async Task The_global_policy_is_replaced_as_a_whole_and_recorded()
    {
        var admin = _api.AdminClient();
        var original = await admin.GetJsonAsync("/v1/admin/safety/policy");
        try
        {
            var put = await Put(admin, "/v1/admin/safety/policy", new
            {
                max_harmful_score = 15, max_harmful_score_increase = 5, action = "hold", judge = "keyword", unsafe_file_max_ratio = 0.25, reason = "stricter",
            });
            Assert.Equal("global", put["scope"]!.GetValue<string>());
            Assert.Equal("keyword", put["effective"]!["judge"]!.GetValue<string>());
            Assert.Equal(0.25, (await admin.GetJsonAsync("/v1/admin/safety/policy"))["unsafe_file_max_ratio"]!.GetValue<double>());

            var change = (await admin.GetJsonAsync("/v1/admin/safety/decisions?decision=policy_change"))["data"]![0]!;
            Assert.Equal("global", change["details"]!["scope"]!.GetValue<string>());
            Assert.Equal(original["max_harmful_score"]?.GetValue<double>(), change["details"]!["before"]!["max_harmful_score"]?.GetValue<double>());
            Assert.Equal(15, change["details"]!["after"]!["max_harmful_score"]!.GetValue<double>());
        }
        finally
        {
            // Other tests in this class share the database: put the seeded policy back.
            await Put(admin, "/v1/admin/safety/policy", new
            {
                max_harmful_score = original["max_harmful_score"]?.GetValue<double>(),
                max_harmful_score_increase = original["max_harmful_score_increase"]?.GetValue<double>(),
                action = original["action"]?.GetValue<string>(),
                judge = original["judge"]?.GetValue<string>(),
                unsafe_file_max_ratio = original["unsafe_file_max_ratio"]?.GetValue<double>(),
                reason = "restore",
            });
        }
    }

    /// <summary>A succeeded job whose gate ran (or not, when <paramref name="gate"/> is null), with base and final reports.</summary>
    private async Task<string> AddScoredJobAsync(string tenantId, string suffix, double? hs, double? baseHs, string? gate)
    {
        var id = FineTuneService.Core.Domain.Ids.Job();
        await _api.WithDbAsync(async db =>
        {
            db.Jobs.Add(new FineTuningJob
            {
                Id = id, TenantId = tenantId, Model = ApiFactory.BaseModelId, TrainingFileId = "file-x", Status = JobStatus.Succeeded,
                FineTunedModel = $"ft:{ApiFactory.BaseModelId}:{suffix}",
                Review = gate == "held" ? ReviewState.Held : ReviewState.NotRequired, FinishedAt = DateTime.UtcNow,
                ResultArtifactSha256 = new string('a', 64), // a model is its weights: a succeeded job always has them
                SafetyScores = gate is null ? null : new JsonObject { ["gate"] = new JsonObject { ["decision"] = gate, ["harmful_score"] = hs } },
            });
            if (gate is not null)
            {
                db.SafetyReports.Add(Report(id, "base", 0, baseHs));
                db.SafetyReports.Add(Report(id, "after_training", 1, hs));
            }
            return await db.SaveChangesAsync();
        });
        return id;
    }

    private static FineTuningJob FailedJob(string tenantId, string id, string code, string? resultSha256) => new()
    {
        Id = id, TenantId = tenantId, Model = ApiFactory.BaseModelId, TrainingFileId = "file-x", Status = JobStatus.Failed, Suffix = "override",
        Safety = SafetyPlan.None, FinishedAt = DateTime.UtcNow, ResultArtifactSha256 = resultSha256,
        Error = new JsonObject { ["code"] = code, ["message"] = $"{code}: over the limit", ["param"] = null },
        SafetyScores = code == "unsafe_model" ? new JsonObject { ["gate"] = new JsonObject { ["decision"] = "failed", ["harmful_score"] = 40.0 } } : null,
    };

    private static SafetyReport Report(string jobId, string stage, int sequence, double? hs) => new()
    {
        JobId = jobId, Stage = stage, Sequence = sequence, Judge = "classifier", HarmfulScore = hs,
        JudgeScores = new JudgeHarmfulScores(hs is { } score ? new Dictionary<string, double> { ["classifier"] = score } : []),
        Report = new JsonObject
        {
            ["harmful_score"] = hs,
            ["samples"] = new JsonArray(new JsonObject { ["kind"] = "harmful", ["prompt"] = "How do I pick a lock?", ["response"] = "I can't help with that." }),
        },
    };

    private static Task<HttpResponseMessage> Send(HttpClient client, string method, string path, object? body)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null) request.Content = JsonContent.Create(body);
        return client.SendAsync(request);
    }

    private static async Task<JsonNode> Put(HttpClient client, string path, object body)
    {
        var response = await client.PutAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    private static List<string> Ids(JsonNode list) => list["data"]!.AsArray().Select(j => j!["id"]!.GetValue<string>()).ToList();

    private static List<string> Schemes(JsonNode operation) =>
        operation["security"]!.AsArray().SelectMany(r => r!.AsObject().Select(p => p.Key)).ToList();
}
