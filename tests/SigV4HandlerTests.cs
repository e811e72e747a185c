using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>
/// <see cref="SigV4Handler"/> under IHttpClientFactory and with each kind of inner handler, and redirects: with
/// loopback servers on two ports, a redirect to the other port never receives a signed header, the token or a
/// signature; a redirect to the same origin is followed and signed afresh.
/// </summary>
public class SigV4HandlerTests
{
    private static readonly SigV4Options Options = new("service", "us-east-1") { Clock = new ManualClock(Time) };

    /// <summary>Server A redirects as its paths say; server B is the other host, which must receive nothing signed.</summary>
    private sealed class TwoServers : IAsyncDisposable
    {
        public LoopbackServer Other { get; } = new();
        public LoopbackServer Signed { get; }

        public TwoServers()
        {
            string other = Other.BaseAddress;
            Signed = new LoopbackServer(r => r.Path switch
            {
                "/cross" => LoopbackServer.Redirect(302, other + "/stolen"),
                "/cross-307" => LoopbackServer.Redirect(307, other + "/stolen"),
                "/same" => LoopbackServer.Redirect(307, "/final?x=1"),
                "/same-absolute" => LoopbackServer.Redirect(308, "http://127.0.0.1:" + r.Header("Host")!.Split(':')[1] + "/final"),
                "/post" => LoopbackServer.Redirect(302, "/final"),
                "/loop" => LoopbackServer.Redirect(302, "/loop"),
                _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            });
        }

        public string Url(string path) => Signed.BaseAddress + path;

        public async ValueTask DisposeAsync()
        {
            await Signed.DisposeAsync();
            await Other.DisposeAsync();
        }
    }

    private static AwsCredentials WithToken => Credentials(Token);

    private static SigV4Verifier Verifier() =>
        new(key => key == AccessKeyId ? WithToken : null, new SigV4Options("service", "us-east-1")) { Clock = new ManualClock(Time) };

    private static void AssertVerifies(RawRequest received)
    {
        var result = Verifier().Verify(received.Method, received.Path, received.Query, received.Headers, received.Body);
        Assert.That(result.IsValid, Is.True, $"{received.Method} {received.Target}: {result.Message}");
    }

    private static void AssertNothingReached(LoopbackServer other) =>
        Assert.That(other.Requests, Is.Empty, "the other host received a request (with the token and X-Amz-Date)");

    // ----------------------------------------------------------------------------------------------------------
    // IHttpClientFactory.
    // ----------------------------------------------------------------------------------------------------------

    [Test]
    public async Task Factory_NamedClient_OneLineRegistration()
    {
        await using var server = new LoopbackServer();
        var services = new ServiceCollection();
        services.AddHttpClient("aws").AddHttpMessageHandler(() => new SigV4Handler(WithToken, Options));
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aws");
        using (var response = await client.GetAsync(server.BaseAddress + "/a?b=c"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // A second client shares the handler chain the factory built: it must work as well.
        using (var response = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aws").GetAsync(server.BaseAddress + "/b"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await server.DisposeAsync();
        Assert.That(server.Requests, Has.Count.EqualTo(2));
        foreach (var received in server.Requests) AssertVerifies(received);
    }

    public sealed class TypedClient(HttpClient http)
    {
        public HttpClient Http => http;
    }

    [Test]
    public async Task Factory_TypedClient_WithTheServiceProviderOverload()
    {
        await using var server = new LoopbackServer();
        var services = new ServiceCollection();
        services.AddSingleton<IAwsCredentialsProvider>(WithToken);
        services.AddHttpClient<TypedClient>()
            .AddHttpMessageHandler(sp => new SigV4Handler(sp.GetRequiredService<IAwsCredentialsProvider>(), Options));
        await using var provider = services.BuildServiceProvider();

        var typed = provider.GetRequiredService<TypedClient>();
        using (var response = await typed.Http.PostAsync(server.BaseAddress + "/typed", new StringContent("{}")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await server.DisposeAsync();
        var received = server.Requests.Single();
        Assert.That(received.Header("X-Amz-Security-Token"), Is.EqualTo(Token));
        AssertVerifies(received);
    }

    [Test]
    public async Task Factory_CrossOriginRedirect_IsReturnedAndTheOtherHostGetsNothing()
    {
        await using var servers = new TwoServers();
        var services = new ServiceCollection();
        services.AddHttpClient("aws").AddHttpMessageHandler(() => new SigV4Handler(WithToken, Options));
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("aws");

        using (var response = await client.GetAsync(servers.Url("/cross")))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Found), "the cross-origin redirect comes back untouched");
            Assert.That(response.Headers.Location, Is.EqualTo(new Uri(servers.Other.BaseAddress + "/stolen")));
        }
        using (var response = await client.GetAsync(servers.Url("/same")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a same-origin redirect is followed");

        await servers.DisposeAsync();
        AssertNothingReached(servers.Other);
        Assert.That(servers.Signed.Requests.Select(r => r.Target), Is.EqualTo(new[] { "/cross", "/same", "/final?x=1" }));
        foreach (var received in servers.Signed.Requests) AssertVerifies(received);
    }

    // ----------------------------------------------------------------------------------------------------------
    // Redirects with the handler's own inner handler and with the caller's.
    // ----------------------------------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> Handlers()
    {
        yield return new TestCaseData((Func<SigV4Handler>)(() => new SigV4Handler(WithToken, Options))).SetName("Redirects: the handler's own inner handler");
        yield return new TestCaseData((Func<SigV4Handler>)(() => new SigV4Handler(WithToken, Options, new SocketsHttpHandler()))).SetName("Redirects: a SocketsHttpHandler that follows redirects");
        yield return new TestCaseData((Func<SigV4Handler>)(() => new SigV4Handler(WithToken, Options, new HttpClientHandler()))).SetName("Redirects: an HttpClientHandler that follows redirects");
        yield return new TestCaseData((Func<SigV4Handler>)(() => new SigV4Handler(WithToken, Options, new PassThrough(new SocketsHttpHandler())))).SetName("Redirects: a SocketsHttpHandler under another DelegatingHandler");
    }

    private sealed class PassThrough(HttpMessageHandler inner) : DelegatingHandler(inner);

    [TestCaseSource(nameof(Handlers))]
    public async Task CrossOriginRedirect_IsReturned_SameOriginIsFollowedAndSignedAfresh(Func<SigV4Handler> create)
    {
        await using var servers = new TwoServers();
        using var client = new HttpClient(create()) { Timeout = TimeSpan.FromSeconds(20) };

        foreach (var (path, status) in new[] { ("/cross", HttpStatusCode.Found), ("/cross-307", HttpStatusCode.TemporaryRedirect) })
        {
            using var response = await client.PostAsync(servers.Url(path), new StringContent("{\"a\":1}"));
            Assert.That(response.StatusCode, Is.EqualTo(status), path);
        }
        using (var response = await client.GetAsync(servers.Url("/same")))
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("ok"));
        using (var response = await client.GetAsync(servers.Url("/same-absolute")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await servers.DisposeAsync();
        AssertNothingReached(servers.Other);
        Assert.That(servers.Signed.Requests.Select(r => r.Target), Is.EqualTo(new[] { "/cross", "/cross-307", "/same", "/final?x=1", "/same-absolute", "/final" }));
        foreach (var received in servers.Signed.Requests) AssertVerifies(received);
    }

    [Test]
    public async Task SameOriginRedirect_AfterPost_IsAGetWithoutBody_307KeepsTheBody()
    {
        await using var servers = new TwoServers();
        using var client = new HttpClient(new SigV4Handler(WithToken, Options)) { Timeout = TimeSpan.FromSeconds(20) };

        using (var response = await client.PostAsync(servers.Url("/post"), new StringContent("{\"a\":1}")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var response = await client.PutAsync(servers.Url("/same"), new ByteArrayContent("body"u8.ToArray())))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await servers.DisposeAsync();
        var received = servers.Signed.Requests.ToArray();
        Assert.That(received.Select(r => r.Method + " " + r.Target + " " + System.Text.Encoding.UTF8.GetString(r.Body)),
            Is.EqualTo(new[] { "POST /post {\"a\":1}", "GET /final ", "PUT /same body", "PUT /final?x=1 body" }));
        Assert.That(received[0].Header("X-Amz-Date"), Is.Not.Null);
        foreach (var r in received) AssertVerifies(r);
    }

    [Test]
    public async Task RedirectLoop_StopsAtTheInnerHandlersLimit()
    {
        await using var servers = new TwoServers();
        using var client = new HttpClient(new SigV4Handler(WithToken, Options, new SocketsHttpHandler { MaxAutomaticRedirections = 3 })) { Timeout = TimeSpan.FromSeconds(20) };

        using var response = await client.GetAsync(servers.Url("/loop"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Found), "the last redirect is returned, as HttpClient does");
        await servers.DisposeAsync();
        Assert.That(servers.Signed.Requests, Has.Count.EqualTo(4), "the request and 3 redirects");
    }

    [Test]
    public async Task InnerHandlerWithRedirectsOff_NoRedirectIsFollowed()
    {
        await using var servers = new TwoServers();
        using var client = new HttpClient(new SigV4Handler(WithToken, Options, new SocketsHttpHandler { AllowAutoRedirect = false })) { Timeout = TimeSpan.FromSeconds(20) };

        using var response = await client.GetAsync(servers.Url("/same"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.TemporaryRedirect));
        await servers.DisposeAsync();
        Assert.That(servers.Signed.Requests.Select(r => r.Target), Is.EqualTo(new[] { "/same" }));
    }

    [Test]
    public async Task InnerHandlerThatFollowsRedirectsAndHasAlreadySent_IsRefusedWithTheFix()
    {
        await using var servers = new TwoServers();
        var inner = new SocketsHttpHandler();
        using (var plain = new HttpClient(inner, disposeHandler: false))
        using (await plain.GetAsync(servers.Url("/final"))) { }
        using var client = new HttpClient(new SigV4Handler(WithToken, Options, inner)) { Timeout = TimeSpan.FromSeconds(20) };

        var e = Assert.ThrowsAsync<InvalidOperationException>(() => client.GetAsync(servers.Url("/cross")))!;

        AssertHelpful(e, "SocketsHttpHandler", "AllowAutoRedirect = false", "X-Amz-Security-Token");
        Assert.That(inner.AllowAutoRedirect, Is.True);
        await servers.DisposeAsync();
        Assert.That(servers.Signed.Requests.Select(r => r.Target), Is.EqualTo(new[] { "/final" }), "nothing was sent signed");
        AssertNothingReached(servers.Other);
    }

    [Test]
    public async Task InnerHandlerThatFollowsRedirects_IsTurnedOffOnTheFirstSend()
    {
        await using var server = new LoopbackServer();
        var inner = new HttpClientHandler();
        using var client = new HttpClient(new SigV4Handler(WithToken, Options, inner));
        Assert.That(inner.AllowAutoRedirect, Is.True);

        using (await client.GetAsync(server.BaseAddress + "/")) { }

        Assert.That(inner.AllowAutoRedirect, Is.False);
    }

    // ----------------------------------------------------------------------------------------------------------
    // The Authorization header as HttpHeaders reads it.
    // ----------------------------------------------------------------------------------------------------------

    [TestCase(SigningAlgorithm.SigV4)]
    [TestCase(SigningAlgorithm.SigV4a)]
    public async Task Authorization_IsReadableAsATypedHeader(SigningAlgorithm algorithm)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.amazonaws.com/a");
        var options = new SigV4Options("service", algorithm == SigningAlgorithm.SigV4 ? "us-east-1" : "*") { Clock = new ManualClock(Time), Algorithm = algorithm };

        var signature = await SigV4.SignAsync(request, WithToken, options);

        AuthenticationHeaderValue? typed = request.Headers.Authorization;
        Assert.That(typed, Is.Not.Null);
        Assert.That(typed!.Scheme, Is.EqualTo(algorithm == SigningAlgorithm.SigV4 ? "AWS4-HMAC-SHA256" : "AWS4-ECDSA-P256-SHA256"));
        Assert.That(typed.ToString(), Is.EqualTo(signature.Authorization));
        Assert.That(request.Headers.GetValues("Authorization").Single(), Is.EqualTo(signature.Authorization));
    }

    [Test]
    public async Task Authorization_TypedHeaderIsWhatGoesOnTheWire()
    {
        await using var server = new LoopbackServer();
        using var client = new HttpClient(new SigV4Handler(WithToken, Options));
        using var request = new HttpRequestMessage(HttpMethod.Get, server.BaseAddress + "/wire");

        using (await client.SendAsync(request)) { }

        await server.DisposeAsync();
        var received = server.Requests.Single();
        Assert.That(received.Header("Authorization"), Is.EqualTo(request.Headers.Authorization!.ToString()));
        AssertVerifies(received);
    }
}
