using System.Net;
using FineTuneService.Api.Auth;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// Tests that need a host configured their own way. Kept apart from the shared-host classes: Hangfire's log provider
/// is process-wide, so a short-lived host must not be disposed while another one is still in use.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class StandaloneHostTests(PostgresServer server)
{
    [Theory]
    [InlineData(null)]
    [InlineData(AuthOptions.DevelopmentAdminKey)]
    public async Task Outside_development_the_app_refuses_to_start_without_a_real_admin_key(string? adminKey)
    {
        await using var production = new ApiFactory(await server.CreateDatabaseAsync(), "Production",
            new Dictionary<string, string?> { ["Auth:AdminKey"] = adminKey, ["FTS_ADMIN_KEY"] = null });
        var error = Assert.ThrowsAny<OptionsValidationException>(() => production.Server);
        Assert.Contains("admin key", error.Message);
    }

    [Fact]
    public async Task Outside_development_a_configured_admin_key_works()
    {
        const string secret = "sk-fts-admin-0123456789abcdef";
        await using var production = new ApiFactory(await server.CreateDatabaseAsync(), "Production",
            new Dictionary<string, string?> { ["FTS_ADMIN_KEY"] = secret, ["Database:MigrateOnStartup"] = "true" });
        var response = await production.ClientWithKey(secret).GetAsync("/v1/admin/tenants");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await (await production.ClientWithKey(AuthOptions.DevelopmentAdminKey).GetAsync("/v1/admin/tenants")).ErrorAsync(401);
    }

    [Fact]
    public async Task An_upload_over_the_size_limit_is_refused_with_413()
    {
        await using var small = new ApiFactory(await server.CreateDatabaseAsync(), settings: new Dictionary<string, string?> { ["Files:MaxUploadBytes"] = "1000" });
        var (_, _, client) = await small.CreateTenantAsync("limits");
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("fine-tune"), "purpose");
        form.Add(new ByteArrayContent(new byte[5000]), "file", "big.jsonl");
        var error = await (await client.PostAsync("/v1/files", form)).ErrorAsync(413);
        Assert.Equal("file_too_large", error["code"]!.GetValue<string>());
    }
}
