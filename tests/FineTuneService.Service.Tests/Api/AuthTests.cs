using System.Net;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FineTuneService.Service.Tests.Api;

[Collection(PostgresCollection.Name)]
public sealed class AuthTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_new_tenant_key_is_shown_once_and_stored_only_as_its_hash()
    {
        var (tenantId, key, client) = await _api.CreateTenantAsync("acme");

        Assert.StartsWith("sk-fts-", key);
        var stored = await _api.WithDbAsync(db => db.ApiKeys.SingleAsync(k => k.TenantId == tenantId));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key))), stored.KeyHash);
        Assert.DoesNotContain(await _api.WithDbAsync(db => db.ApiKeys.Select(k => k.KeyHash + k.Prefix).ToListAsync()), v => v.Contains(key));

        var tenants = await _api.AdminClient().GetJsonAsync("/v1/admin/tenants");
        var listed = tenants["data"]!.AsArray().Single(t => t!["id"]!.GetValue<string>() == tenantId)!;
        Assert.Null(listed["api_key"]);

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/files")).StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sk-fts-not-a-real-key")]
    public async Task A_missing_or_unknown_key_gets_401_in_the_openai_envelope(string? key)
    {
        var error = await (await _api.ClientWithKey(key).GetAsync("/v1/fine_tuning/jobs")).ErrorAsync(401);
        Assert.Equal("invalid_api_key", error["code"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_tenant_key_cannot_use_admin_endpoints_nor_an_admin_key_tenant_ones()
    {
        var (_, _, tenant) = await _api.CreateTenantAsync("plain");
        await (await tenant.PostAsync("/v1/admin/tenants", JsonContent(new { name = "x" }))).ErrorAsync(403);
        await (await _api.AdminClient().GetAsync("/v1/files")).ErrorAsync(403);
    }

    [Fact]
    public async Task Unknown_v1_routes_answer_in_the_envelope_and_bad_json_is_a_400()
    {
        var (_, _, client) = await _api.CreateTenantAsync("routes");
        var missing = await (await client.GetAsync("/v1/nothing-here")).ErrorAsync(404);
        Assert.Equal("not_found", missing["code"]!.GetValue<string>());

        var bad = await (await client.PostAsync("/v1/fine_tuning/jobs",
            new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"))).ErrorAsync(400);
        Assert.Equal("invalid_request_error", bad["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_hangfire_dashboard_is_admin_only()
    {
        var browser = _api.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        Assert.NotEqual(HttpStatusCode.OK, (await browser.GetAsync("/hangfire")).StatusCode);
        var (_, _, tenant) = await _api.CreateTenantAsync("dashboard");
        Assert.NotEqual(HttpStatusCode.OK, (await tenant.GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _api.AdminClient().GetAsync("/hangfire")).StatusCode);
    }

    [Fact]
    public async Task A_revoked_key_answers_401_at_once_while_the_tenants_other_key_keeps_working()
    {
        var (tenantId, oldKey, oldClient) = await _api.CreateTenantAsync("rotating");
        var admin = _api.AdminClient();
        Assert.Equal(HttpStatusCode.OK, (await oldClient.GetAsync("/v1/fine_tuning/jobs")).StatusCode); // remembered now

        var issued = await admin.PostJsonAsync($"/v1/admin/tenants/{tenantId}/api_keys");
        var newKey = issued["api_key"]!.GetValue<string>();
        Assert.NotEqual(oldKey, newKey);
        Assert.Equal(tenantId, issued["tenant_id"]!.GetValue<string>());
        var listed = (await admin.GetJsonAsync($"/v1/admin/tenants/{tenantId}/api_keys"))["data"]!.AsArray();
        Assert.Equal(2, listed.Count);
        Assert.All(listed, k => Assert.Null(k!["api_key"]));
        var oldId = listed.Single(k => k!["id"]!.GetValue<string>() != issued["id"]!.GetValue<string>())!["id"]!.GetValue<string>();

        var revoked = JsonNode.Parse(await (await admin.DeleteAsync($"/v1/admin/tenants/{tenantId}/api_keys/{oldId}")).Content.ReadAsStringAsync())!;
        Assert.NotNull(revoked["revoked_at"]);
        var error = await (await oldClient.GetAsync("/v1/fine_tuning/jobs")).ErrorAsync(401);
        Assert.Equal("invalid_api_key", error["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await _api.ClientWithKey(newKey).GetAsync("/v1/fine_tuning/jobs")).StatusCode);

        await (await admin.DeleteAsync($"/v1/admin/tenants/{tenantId}/api_keys/{Guid.NewGuid()}")).ErrorAsync(404);
        await (await admin.GetAsync("/v1/admin/tenants/tenant-nobody/api_keys")).ErrorAsync(404);
        await (await _api.ClientWithKey(newKey).GetAsync($"/v1/admin/tenants/{tenantId}/api_keys")).ErrorAsync(403);
    }

    [Fact]
    public async Task A_key_revoked_outside_this_host_stops_working_once_the_key_cache_ttl_has_passed()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(),
            settings: new Dictionary<string, string?> { ["Auth:KeyCacheTtl"] = "00:00:30" },
            configureServices: services => services.AddSingleton<TimeProvider>(clock));
        var (tenantId, _, client) = await api.CreateTenantAsync("elsewhere");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/files")).StatusCode);

        // Another replica (or an operator in SQL) revokes the key: this host still remembers it for the TTL.
        await api.WithDbAsync(db => db.ApiKeys.Where(k => k.TenantId == tenantId)
            .ExecuteUpdateAsync(k => k.SetProperty(x => x.RevokedAt, DateTime.UtcNow)));
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/files")).StatusCode);

        clock.Advance(TimeSpan.FromSeconds(2));
        await (await client.GetAsync("/v1/files")).ErrorAsync(401);
    }

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;
        public override DateTimeOffset GetUtcNow() => _now;
        public void Advance(TimeSpan by) => _now += by;
    }

    private static StringContent JsonContent(object body) =>
        new(System.Text.Json.JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
