using System.Net;
using FineTuneService.Api.Auth;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>
/// The Hangfire dashboard's browser login: a POSTed form, never the key in a URL, and a cookie that every API replica
/// accepts because the Data Protection key ring lives in PostgreSQL.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class DashboardLoginTests(PostgresServer server)
{
    private static readonly WebApplicationFactoryClientOptions Browser = new() { AllowAutoRedirect = false };

    [Fact]
    public async Task Two_api_instances_accept_each_others_dashboard_cookie()
    {
        var database = await server.CreateDatabaseAsync();
        await using var first = new ApiFactory(database);
        await using var second = new ApiFactory(database);

        var cookie = await SignInAsync(first.CreateClient(Browser));

        Assert.Equal(HttpStatusCode.OK, (await GetDashboardAsync(second.CreateClient(Browser), cookie)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await GetDashboardAsync(first.CreateClient(Browser), cookie)).StatusCode);
        var keys = await first.WithDbAsync(db => db.DataProtectionKeys.CountAsync());
        Assert.True(keys >= 1, "the key ring is stored in PostgreSQL");
    }

    [Fact]
    public async Task The_dashboard_sends_a_browser_to_a_login_form_and_takes_no_key_from_the_url()
    {
        await using var api = new ApiFactory(await server.CreateDatabaseAsync());
        var browser = api.CreateClient(Browser);

        using var page = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        page.Headers.Add("Accept", "text/html");
        var redirected = await browser.SendAsync(page);
        Assert.Equal(HttpStatusCode.Redirect, redirected.StatusCode);
        Assert.Equal(HangfireDashboardAccess.LoginPath, redirected.Headers.Location!.OriginalString);
        var form = await browser.GetAsync(HangfireDashboardAccess.LoginPath);
        Assert.Equal(HttpStatusCode.OK, form.StatusCode);
        Assert.Contains("type=\"password\"", await form.Content.ReadAsStringAsync());

        // The old query-string sign-in sets no cookie any more.
        var query = await browser.GetAsync($"/hangfire?access_token={AuthOptions.DevelopmentAdminKey}");
        Assert.False(query.Headers.Contains("Set-Cookie"));
        Assert.NotEqual(HttpStatusCode.OK, query.StatusCode);

        var wrong = await browser.PostAsync(HangfireDashboardAccess.LoginPath, LoginForm("sk-fts-not-the-admin-key"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.False(wrong.Headers.Contains("Set-Cookie"));

        var cookie = await SignInAsync(browser);
        Assert.Equal(HttpStatusCode.OK, (await GetDashboardAsync(browser, cookie)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await api.AdminClient().GetAsync("/hangfire")).StatusCode);

        // As the dashboard's logout button posts it: an empty URL-encoded form.
        using var logout = new HttpRequestMessage(HttpMethod.Post, HangfireDashboardAccess.LogoutPath) { Content = new FormUrlEncodedContent([]) };
        logout.Headers.Add("Cookie", cookie);
        var loggedOut = await browser.SendAsync(logout);
        Assert.Contains(loggedOut.Headers.GetValues("Set-Cookie"), c => c.StartsWith("fts_admin=;", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public async Task Behind_a_trusted_tls_proxy_the_dashboard_cookie_is_secure(bool forwardedHeaders, bool secure)
    {
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: new Dictionary<string, string?>
        {
            ["ForwardedHeaders:Enabled"] = forwardedHeaders.ToString(),
            ["ForwardedHeaders:KnownProxies:0"] = "10.1.2.3",
        });

        var response = await api.Server.SendAsync(context =>
        {
            context.Connection.RemoteIpAddress = IPAddress.Parse("10.1.2.3");
            context.Request.Method = HttpMethods.Post;
            context.Request.Path = HangfireDashboardAccess.LoginPath;
            context.Request.Headers["X-Forwarded-Proto"] = "https";
            context.Request.Headers["X-Forwarded-For"] = "203.0.113.9";
            context.Request.ContentType = "application/x-www-form-urlencoded";
            context.Request.Body = new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"key={Uri.EscapeDataString(AuthOptions.DevelopmentAdminKey)}"));
        });

        Assert.Equal(StatusCodes.Status302Found, response.Response.StatusCode);
        var setCookie = response.Response.Headers.SetCookie.ToString();
        Assert.Equal(secure, setCookie.Contains("secure", StringComparison.OrdinalIgnoreCase));
    }

    private static FormUrlEncodedContent LoginForm(string key) =>
        new([new KeyValuePair<string, string>(HangfireDashboardAccess.KeyField, key)]);

    private static async Task<string> SignInAsync(HttpClient browser)
    {
        var response = await browser.PostAsync(HangfireDashboardAccess.LoginPath, LoginForm(AuthOptions.DevelopmentAdminKey));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal(HangfireDashboardAccess.Path, response.Headers.Location!.OriginalString);
        return response.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
    }

    private static Task<HttpResponseMessage> GetDashboardAsync(HttpClient browser, string cookie)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        request.Headers.Add("Cookie", cookie);
        return browser.SendAsync(request);
    }
}
