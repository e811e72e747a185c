using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>
/// What HttpClient actually sends through <see cref="SigV4Handler"/>, captured byte for byte by a loopback server,
/// must verify the way the service verifies it: recompute the signature from the received request line, the
/// received values of the headers named in SignedHeaders, the received body and the received X-Amz-Date.
/// </summary>
public class WireTests
{
    // Headers the service sees but that are not signed, on purpose: transport framing and what HTTP stacks rewrite.
    private static readonly HashSet<string> UnsignedOnPurpose =
        ["authorization", "content-length", "transfer-encoding", "connection", "expect", "user-agent", "traceparent", "tracestate", "baggage",
         "request-id", "correlation-context"];

    /// <summary>Verifies a received request as the service would, and returns the recomputed signature.</summary>
    private static SigV4Signature AssertVerifies(RawRequest received, AwsCredentials credentials, SigV4Options options)
    {
        string authorization = received.Header("Authorization") ?? throw new AssertionException("no single Authorization header was received");
        var match = Regex.Match(authorization,
            @"^AWS4-HMAC-SHA256 Credential=(?<akid>[^/]+)/(?<date>\d{8})/(?<region>[^/]+)/(?<service>[^/]+)/aws4_request, SignedHeaders=(?<signed>[a-z0-9;_-]+), Signature=(?<signature>[0-9a-f]{64})$");
        Assert.That(match.Success, Is.True, $"Authorization '{authorization}' is well formed");
        string amzDate = received.Header("X-Amz-Date") ?? throw new AssertionException("no single X-Amz-Date header was received");
        Assert.That(match.Groups["date"].Value, Is.EqualTo(amzDate[..8]), "the scope date is the X-Amz-Date's day");
        Assert.That(match.Groups["akid"].Value, Is.EqualTo(credentials.AccessKeyId));

        var signedNames = match.Groups["signed"].Value.Split(';');
        foreach (var name in signedNames)
            Assert.That(received.Values(name), Is.Not.Empty, $"signed header '{name}' was received");
        foreach (var header in received.Headers)
            Assert.That(signedNames.Contains(header.Key.ToLowerInvariant()) || UnsignedOnPurpose.Contains(header.Key.ToLowerInvariant()), Is.True,
                $"received header '{header.Key}' is signed");

        // The signer adds X-Amz-Date (from the time) and the token (from the credentials) itself.
        var headers = received.Headers
            .Where(h => signedNames.Contains(h.Key.ToLowerInvariant()) && h.Key.ToLowerInvariant() is not ("x-amz-date" or "x-amz-security-token"))
            .ToList();
        string bodyHash = Sha256Hex(received.Body);
        string? contentSha256 = received.Header("x-amz-content-sha256");
        if (contentSha256 is not null && contentSha256 != SigV4.UnsignedPayload)
            Assert.That(contentSha256, Is.EqualTo(bodyHash), "x-amz-content-sha256 is the hash of the body received");
        var time = DateTimeOffset.ParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

        var recomputed = SigV4.Sign(received.Method, received.Path, received.Query, headers, contentSha256 ?? bodyHash, time, credentials, options);

        Assert.That(authorization, Is.EqualTo(recomputed.Authorization), "the signature verifies against what was received");
        Assert.That(match.Groups["signature"].Value,
            Is.EqualTo(Signature(recomputed.CanonicalRequest, amzDate, match.Groups["region"].Value, match.Groups["service"].Value, credentials.SecretAccessKey)));
        if (credentials.SessionToken is not null)
            Assert.That(received.Header("X-Amz-Security-Token"), Is.EqualTo(credentials.SessionToken));
        return recomputed;
    }

    private static async Task<RawRequest[]> Finish(LoopbackServer server, int expectedRequests)
    {
        await server.DisposeAsync();
        Assert.That(server.Errors, Is.Empty, "the server parsed every request");
        Assert.That(server.Requests, Has.Count.EqualTo(expectedRequests));
        return server.Requests.ToArray();
    }

    [Test]
    public async Task LambdaArnPathQueryWithSpaceCharsetAndTwoValuedHeader()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials(Token);
        var options = new SigV4Options("lambda", "us-west-2");
        using var client = new HttpClient(new SigV4Handler(credentials, options)) { Timeout = TimeSpan.FromSeconds(20) };
        const string path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A123456789012%3Afunction%3Amy-function%3Aprod/invocations";
        using var request = new HttpRequestMessage(HttpMethod.Post, server.BaseAddress + path + "?q=a b&Qualifier=prod")
        {
            Content = new StringContent("{\"a\":1}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Amz-Meta-Two", ["first", "second"]);
        request.Headers.Add("X-Amz-Invocation-Type", "Event");

        using var response = await client.SendAsync(request);
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("ok"));
        var received = (await Finish(server, 1))[0];

        Assert.That(received.Path, Is.EqualTo(path), "the %3A escapes travel as they are");
        Assert.That(received.Query, Is.EqualTo("q=a%20b&Qualifier=prod"));
        Assert.That(received.Header("Host"), Is.EqualTo($"127.0.0.1:{server.Port}"), "non-default port");
        Assert.That(received.Header("Content-Type"), Is.EqualTo("application/json; charset=utf-8"));
        Assert.That(received.Header("Content-Length"), Is.EqualTo("7"));
        Assert.That(received.Header("X-Amz-Meta-Two"), Is.EqualTo("first, second"));
        Assert.That(Encoding.UTF8.GetString(received.Body), Is.EqualTo("{\"a\":1}"));

        var recomputed = AssertVerifies(received, credentials, options);
        Assert.That(Line(recomputed.CanonicalRequest, 1),
            Is.EqualTo("/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A123456789012%253Afunction%253Amy-function%253Aprod/invocations"));
        Assert.That(Line(recomputed.CanonicalRequest, 2), Is.EqualTo("Qualifier=prod&q=a%20b"));
        Assert.That(recomputed.SignedHeaders,
            Is.EqualTo("content-type;host;x-amz-date;x-amz-invocation-type;x-amz-meta-two;x-amz-security-token"));
        Assert.That(PayloadHashLine(recomputed.CanonicalRequest), Is.EqualTo("015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"));
    }

    [Test]
    public async Task Lambda_StreamedBody_IsBufferedHashedAndSentWhole()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials();
        var options = new SigV4Options("lambda", "us-east-1");
        using var client = new HttpClient(new SigV4Handler(credentials, options)) { Timeout = TimeSpan.FromSeconds(20) };
        var body = Encoding.UTF8.GetBytes(new string('x', 100_000));
        using var request = new HttpRequestMessage(HttpMethod.Post, server.BaseAddress + "/2015-03-31/functions/f/invocations")
        {
            Content = new StreamContent(new ReadOnceStream(body)),
        };

        using var response = await client.SendAsync(request);
        var received = (await Finish(server, 1))[0];

        Assert.That(received.Body, Is.EqualTo(body));
        var recomputed = AssertVerifies(received, credentials, options);
        Assert.That(PayloadHashLine(recomputed.CanonicalRequest), Is.EqualTo(Sha256Hex(body)));
    }

    [Test]
    public async Task S3_StreamedBody_IsChunkedAndUnsigned()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials(Token);
        var options = new SigV4Options("s3", "us-east-1");
        using var client = new HttpClient(new SigV4Handler(credentials, options)) { Timeout = TimeSpan.FromSeconds(20) };
        var body = Encoding.UTF8.GetBytes(new string('y', 50_000));
        using var request = new HttpRequestMessage(HttpMethod.Put, server.BaseAddress + "/my-bucket/a%20b+c%C3%A9")
        {
            Content = new StreamContent(new ReadOnceStream(body)),
        };

        using var response = await client.SendAsync(request);
        var received = (await Finish(server, 1))[0];

        Assert.That(received.Chunked, Is.True, "a body of unknown length is sent chunked");
        Assert.That(received.Body, Is.EqualTo(body));
        Assert.That(received.Header("x-amz-content-sha256"), Is.EqualTo(SigV4.UnsignedPayload));
        var recomputed = AssertVerifies(received, credentials, options);
        Assert.That(Line(recomputed.CanonicalRequest, 1), Is.EqualTo("/my-bucket/a%20b%2Bc%C3%A9"));
    }

    [Test]
    public async Task S3_SeekableStream_IsHashed()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials();
        var options = new SigV4Options("s3", "us-east-1");
        using var client = new HttpClient(new SigV4Handler(credentials, options)) { Timeout = TimeSpan.FromSeconds(20) };
        var body = Encoding.UTF8.GetBytes("hello");
        using var request = new HttpRequestMessage(HttpMethod.Put, server.BaseAddress + "/my-bucket/key") { Content = new StreamContent(new MemoryStream(body)) };

        using var response = await client.SendAsync(request);
        var received = (await Finish(server, 1))[0];

        Assert.That(received.Body, Is.EqualTo(body));
        Assert.That(received.Header("Content-Length"), Is.EqualTo("5"));
        Assert.That(received.Header("x-amz-content-sha256"), Is.EqualTo("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        AssertVerifies(received, credentials, options);
    }

    /// <summary>Sends the same request twice, as a retry policy does, moving the clock in between.</summary>
    private sealed class ResendHandler(HttpMessageHandler inner, Action betweenSends) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            using (var first = await base.SendAsync(request, cancellationToken))
                await first.Content.ReadAsByteArrayAsync(cancellationToken);
            betweenSends();
            return await base.SendAsync(request, cancellationToken);
        }
    }

    private static IEnumerable<TestCaseData> RetriedBodies()
    {
        yield return new TestCaseData("lambda", (Func<HttpContent>)(() => new StringContent("{\"a\":1}", Encoding.UTF8, "application/json"))).SetName("Retried send: lambda, StringContent");
        yield return new TestCaseData("lambda", (Func<HttpContent>)(() => new StreamContent(new ReadOnceStream("{\"a\":1}"u8.ToArray())))).SetName("Retried send: lambda, non-seekable stream");
        yield return new TestCaseData("s3", (Func<HttpContent>)(() => new StreamContent(new MemoryStream("{\"a\":1}"u8.ToArray())))).SetName("Retried send: s3, seekable stream");
        yield return new TestCaseData("s3", (Func<HttpContent>)(() => new ByteArrayContent("{\"a\":1}"u8.ToArray()))).SetName("Retried send: s3, ByteArrayContent");
    }

    [TestCaseSource(nameof(RetriedBodies))]
    public async Task RetriedSend_IsSignedAfreshAndVerifies(string service, Func<HttpContent> makeContent)
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials(Token);
        var clock = new ManualClock(Time);
        var options = new SigV4Options(service, "us-east-1") { Clock = clock };
        using var client = new HttpClient(new ResendHandler(new SigV4Handler(credentials, options), () => clock.Now += TimeSpan.FromMinutes(1)))
        {
            Timeout = TimeSpan.FromSeconds(20),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, server.BaseAddress + "/path%3Awith/colon?x=1") { Content = makeContent() };

        using var response = await client.SendAsync(request);
        var received = await Finish(server, 2);

        Assert.That(received[0].Header("X-Amz-Date"), Is.EqualTo("20150830T123600Z"));
        Assert.That(received[1].Header("X-Amz-Date"), Is.EqualTo("20150830T123700Z"));
        foreach (var r in received)
        {
            Assert.That(Encoding.UTF8.GetString(r.Body), Is.EqualTo("{\"a\":1}"), "the body is sent whole each time");
            Assert.That(r.Values("Authorization"), Has.Length.EqualTo(1));
            AssertVerifies(r, credentials, options);
        }
    }

    [Test]
    public async Task TwoRequestsWithTheClockMoved()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials();
        var clock = new ManualClock(new DateTimeOffset(2015, 8, 30, 23, 59, 59, TimeSpan.Zero));
        var options = new SigV4Options("lambda", "us-east-1") { Clock = clock };
        using var client = new HttpClient(new SigV4Handler(credentials, options)) { Timeout = TimeSpan.FromSeconds(20) };

        using (var first = await client.GetAsync(server.BaseAddress + "/a")) { }
        clock.Now += TimeSpan.FromSeconds(1);
        using (var second = await client.GetAsync(server.BaseAddress + "/a")) { }
        var received = await Finish(server, 2);

        Assert.That(received.Select(r => r.Header("X-Amz-Date")), Is.EqualTo(new[] { "20150830T235959Z", "20150831T000000Z" }));
        foreach (var r in received) AssertVerifies(r, credentials, options);
    }

    // With an Activity current, HttpClient injects a traceparent header, and a retry that sends the request again
    // without it (as a retry or redirect stage may) gets a new one. A signature that covered the first traceparent
    // would not verify on the retry.
    [Test]
    public async Task RetriedSend_WithDistributedTracing_Verifies()
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials();
        var clock = new ManualClock(Time);
        var options = new SigV4Options("lambda", "us-east-1") { Clock = clock };
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "System.Net.Http",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        using var activity = new Activity("test").SetIdFormat(ActivityIdFormat.W3C).Start();
        using var request = new HttpRequestMessage(HttpMethod.Post, server.BaseAddress + "/f") { Content = new StringContent("{}") };
        using var client = new HttpClient(new ResendHandler(new SigV4Handler(credentials, options), () =>
        {
            clock.Now += TimeSpan.FromMinutes(1);
            request.Headers.Remove("traceparent");
        }))
        {
            Timeout = TimeSpan.FromSeconds(20),
        };

        using var response = await client.SendAsync(request);
        var received = await Finish(server, 2);

        Assert.That(received[0].Header("traceparent"), Is.Not.Null, "HttpClient injected a trace header");
        Assert.That(received[1].Header("traceparent"), Is.Not.EqualTo(received[0].Header("traceparent")), "each attempt has its own span id");
        foreach (var r in received) AssertVerifies(r, credentials, options);
    }

    // HttpClient writes the Host header itself (punycode for IDN, brackets for IPv6, lowercase, port unless default):
    // the signed host must be the same. The connection goes to the loopback server whatever the host name.
    [TestCase("http://b\u00fccher.example:{0}/x", TestName = "Wire: IDN host")]
    [TestCase("http://[::1]:{0}/x", TestName = "Wire: IPv6 host")]
    [TestCase("http://Example.COM:{0}/x", TestName = "Wire: uppercase host")]
    public async Task HostHeaderAsHttpClientWritesIt(string uriFormat)
    {
        await using var server = new LoopbackServer();
        var credentials = Credentials();
        var options = new SigV4Options("service", "us-east-1");
        var toLoopback = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(System.Net.IPAddress.Loopback, server.Port, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(new SigV4Handler(credentials, options, toLoopback)) { Timeout = TimeSpan.FromSeconds(20) };

        using (var response = await client.GetAsync(string.Format(CultureInfo.InvariantCulture, uriFormat, server.Port))) { }
        var received = (await Finish(server, 1))[0];

        var recomputed = AssertVerifies(received, credentials, options);
        Assert.That(Line(recomputed.CanonicalRequest, 3), Is.EqualTo("host:" + received.Header("Host")));
    }

    [Test]
    public async Task PerRequestOptionsAndRotatingCredentials()
    {
        await using var server = new LoopbackServer();
        var rotating = new RotatingProvider(Credentials(), new AwsCredentials("AKIDROTATED", "rotatedSecretKeyEXAMPLEEXAMPLEEXAMPLE12", Token));
        var lambda = new SigV4Options("lambda", "us-east-1");
        var s3 = new SigV4Options("s3", "eu-west-1");
        using var client = new HttpClient(new SigV4Handler(rotating, lambda)) { Timeout = TimeSpan.FromSeconds(20) };

        using (var response = await client.PostAsync(server.BaseAddress + "/f", new StringContent("{}"))) { }
        using var request = new HttpRequestMessage(HttpMethod.Put, server.BaseAddress + "/bucket/key") { Content = new StringContent("data") };
        request.Options.Set(SigV4Handler.OptionsKey, s3);
        using (var response = await client.SendAsync(request)) { }
        var received = await Finish(server, 2);

        var first = AssertVerifies(received[0], rotating.All[0], lambda);
        var second = AssertVerifies(received[1], rotating.All[1], s3);
        Assert.That(first.CredentialScope, Does.EndWith("/us-east-1/lambda/aws4_request"));
        Assert.That(second.CredentialScope, Does.EndWith("/eu-west-1/s3/aws4_request"));
        Assert.That(received[1].Header("Authorization"), Does.StartWith("AWS4-HMAC-SHA256 Credential=AKIDROTATED/"));
        Assert.That(received[1].Header("x-amz-content-sha256"), Is.EqualTo(Sha256Hex("data")));
    }

    /// <summary>Gives the next credentials on each call, as a refreshing provider does.</summary>
    private sealed class RotatingProvider(params AwsCredentials[] all) : IAwsCredentialsProvider
    {
        private int _next;

        public AwsCredentials[] All => all;

        public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default) =>
            new(all[Math.Min(Interlocked.Increment(ref _next) - 1, all.Length - 1)]);
    }
}
