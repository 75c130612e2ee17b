using System.Net;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
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

    private static StringContent JsonContent(object body) =>
        new(System.Text.Json.JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
