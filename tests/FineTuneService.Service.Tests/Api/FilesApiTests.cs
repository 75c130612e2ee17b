using System.Net;
using System.Text.Json.Nodes;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Api;

[Collection(PostgresCollection.Name)]
public sealed class FilesApiTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Upload_list_retrieve_download_and_delete_round_trip()
    {
        var (_, _, client) = await _api.CreateTenantAsync("files");
        var content = Datasets.ValidChat();

        var uploaded = await client.UploadAsync(content, "my-data.jsonl");
        var id = uploaded["id"]!.GetValue<string>();
        Assert.StartsWith("file-", id);
        Assert.Equal("file", uploaded["object"]!.GetValue<string>());
        Assert.Equal("fine-tune", uploaded["purpose"]!.GetValue<string>());
        Assert.Equal("my-data.jsonl", uploaded["filename"]!.GetValue<string>());
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(content), uploaded["bytes"]!.GetValue<long>());
        Assert.InRange(uploaded["created_at"]!.GetValue<long>(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);

        var validated = await client.WaitForValidationAsync(id);
        Assert.Equal("processed", validated["status"]!.GetValue<string>());
        Assert.Equal(12, validated["validation"]!["example_count"]!.GetValue<int>());

        var list = await client.GetJsonAsync("/v1/files");
        Assert.Equal("list", list["object"]!.GetValue<string>());
        Assert.Contains(list["data"]!.AsArray(), f => f!["id"]!.GetValue<string>() == id);

        Assert.Equal(content, await client.GetStringAsync($"/v1/files/{id}/content"));

        var deleted = JsonNode.Parse(await (await client.DeleteAsync($"/v1/files/{id}")).Content.ReadAsStringAsync())!;
        Assert.True(deleted["deleted"]!.GetValue<bool>());
        await (await client.GetAsync($"/v1/files/{id}")).ErrorAsync(404);
        Assert.DoesNotContain((await client.GetJsonAsync("/v1/files"))["data"]!.AsArray(), f => f!["id"]!.GetValue<string>() == id);
    }

    [Fact]
    public async Task Files_page_by_cursor_newest_first_or_in_upload_order()
    {
        var (_, _, client) = await _api.CreateTenantAsync("files-paging");
        var ids = new List<string>();
        foreach (var name in new[] { "a.jsonl", "b.jsonl", "c.jsonl" })
            ids.Add((await client.UploadAsync(Datasets.ValidChat(), name))["id"]!.GetValue<string>());

        async Task<(List<string> Ids, bool More)> Page(string query)
        {
            var page = await client.GetJsonAsync($"/v1/files?{query}");
            return (page["data"]!.AsArray().Select(f => f!["id"]!.GetValue<string>()).ToList(), page["has_more"]!.GetValue<bool>());
        }
        var newest = await Page("limit=2");
        Assert.Equal([ids[2], ids[1]], newest.Ids);
        Assert.True(newest.More);
        Assert.Equal([ids[0]], (await Page($"limit=2&after={ids[1]}")).Ids);

        var oldest = await Page("limit=2&order=asc");
        Assert.Equal([ids[0], ids[1]], oldest.Ids);
        Assert.Equal([ids[2]], (await Page($"limit=2&order=asc&after={ids[1]}")).Ids);
    }

    [Fact]
    public async Task A_malformed_file_ends_in_error_with_a_line_numbered_report()
    {
        var (_, _, client) = await _api.CreateTenantAsync("malformed");
        var lines = Datasets.ValidChat().Split('\n');
        lines[1] = """{"messages": [{"role": "user", "content": "unterminated""";
        lines[4] = """{"messages": [{"role": "user", "content": "no answer"}]}""";

        var file = await client.UploadValidatedAsync(string.Join('\n', lines));

        Assert.Equal("error", file["status"]!.GetValue<string>());
        var details = file["status_details"]!.GetValue<string>();
        Assert.Contains("line 2", details);
        Assert.Contains("line 5", details);
        var errors = file["validation"]!["errors"]!.AsArray();
        Assert.Equal(2, errors[0]!["line"]!.GetValue<int>());
        Assert.Equal("invalid_json", errors[0]!["code"]!.GetValue<string>());
        Assert.Contains(errors, e => e!["line"]!.GetValue<int>() == 5 && e["code"]!.GetValue<string>() == "no_assistant_message");
    }

    [Fact]
    public async Task Another_tenants_file_is_not_found_for_every_operation()
    {
        var (_, _, owner) = await _api.CreateTenantAsync("owner");
        var (_, _, other) = await _api.CreateTenantAsync("other");
        var id = (await owner.UploadAsync(Datasets.ValidChat()))["id"]!.GetValue<string>();
        const string neverExisted = "file-000000000000000000000000";

        foreach (var target in new[] { id, neverExisted })
        {
            var get = await (await other.GetAsync($"/v1/files/{target}")).ErrorAsync(404);
            Assert.Equal($"No such file: {target}", get["message"]!.GetValue<string>());
            await (await other.GetAsync($"/v1/files/{target}/content")).ErrorAsync(404);
            await (await other.DeleteAsync($"/v1/files/{target}")).ErrorAsync(404);
        }
        Assert.Empty((await other.GetJsonAsync("/v1/files"))["data"]!.AsArray());

        var job = await (await other.PostAsync("/v1/fine_tuning/jobs", System.Net.Http.Json.JsonContent.Create(new
        {
            model = ApiFactory.BaseModelId, training_file = id,
        }))).ErrorAsync(400);
        Assert.Equal("training_file", job["param"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync($"/v1/files/{id}")).StatusCode);
    }
}
