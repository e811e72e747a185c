using System.Globalization;
using System.Net;
using System.Text;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>What one connection may cost the emulator: a request that cannot be validly signed is refused before its
/// body is read, and bodies, headers and connections are bounded.</summary>
public class EmulatorHardeningTests
{
    private const int NearlySixMB = 5_900_000;

    // An Authorization header of the right form whose signature cannot match (the body is not hashed: these requests
    // cost the client nothing to make, as an attacker's would).
    private static HttpRequestMessage Forged(string accessKeyId, string region, DateTimeOffset signedAt, byte[] body)
    {
        var request = Invoke("echo", payload: null);
        request.Content = new ByteArrayContent(body);
        string amzDate = signedAt.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        request.Headers.Add("X-Amz-Date", amzDate);
        request.Headers.TryAddWithoutValidation("Authorization",
            $"AWS4-HMAC-SHA256 Credential={accessKeyId}/{amzDate[..8]}/{region}/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={new string('0', 64)}");
        return request;
    }

    public static IEnumerable<TestCaseData> Refusals()
    {
        var now = DateTimeOffset.UtcNow;
        yield return new TestCaseData(null, "MissingAuthenticationTokenException").SetName("an unsigned body is refused unread");
        yield return new TestCaseData(("AKIDUNKNOWN", "us-east-1", now), "UnrecognizedClientException").SetName("a body signed with an unknown key is refused unread");
        yield return new TestCaseData(("AKIDEXAMPLE", "eu-west-1", now), "InvalidSignatureException").SetName("a body signed for another region is refused unread");
        yield return new TestCaseData(("AKIDEXAMPLE", "us-east-1", now.AddMinutes(-20)), "InvalidSignatureException").SetName("a body signed 20 minutes ago is refused unread");
    }

    // 24 connections at once each send a 5.9 MB body that cannot be validly signed: each is answered 403, and the
    // emulator (in this process) allocates far less than the bodies hold: measured 27 MB (Kestrel's receive buffers),
    // 166 MB when the bodies were buffered before the signature was checked.
    [TestCaseSource(nameof(Refusals))]
    public async Task RefusesAWronglySignedBodyBeforeReadingIt(object? forgery, string errorType)
    {
        const int Connections = 24;
        await using var emulator = await LambdaEmulator.StartAsync();
        using var client = UnsignedClient(emulator);
        byte[] body = new byte[NearlySixMB];
        body.AsSpan().Fill((byte)'1');
        HttpRequestMessage Request() => forgery is (string key, string region, DateTimeOffset at)
            ? Forged(key, region, at, body)
            : new HttpRequestMessage(HttpMethod.Post, InvokePath("echo")) { Content = new ByteArrayContent(body) };
        using (var warmUp = await client.SendAsync(Request()))
            Assert.That(warmUp.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));

        long before = GC.GetTotalAllocatedBytes(precise: true);
        var statuses = await Task.WhenAll(Enumerable.Range(0, Connections).Select(async _ =>
        {
            using var response = await client.SendAsync(Request());
            return (response.StatusCode, Header(response, "x-amzn-ErrorType"));
        }));
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        Assert.That(statuses, Has.All.EqualTo((HttpStatusCode.Forbidden, errorType + ErrorTypeSuffix)));
        Assert.That(emulator.Counters.SignatureFailures, Is.EqualTo(Connections + 1));
        Assert.That(allocated, Is.LessThan(Connections * (long)NearlySixMB / 2),
            $"{allocated:N0} bytes allocated for {Connections} refused bodies of {NearlySixMB:N0} bytes");
    }

    // Over the payload limit but within what the emulator reads to its end: the client, still sending, gets the 413.
    [TestCase(null, 10 * 1024 * 1024, "6291456 bytes")]
    [TestCase("Event", 5 * 1024 * 1024, "1048576 bytes")]
    public async Task AnswersABodyOverTheLimitWith413WhileTheClientStillSends(string? invocationType, int size, string limit)
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        using var client = SignedClient(emulator);
        using var request = Invoke("echo", payload: null, invocationType: invocationType);
        request.Content = new ByteArrayContent(new byte[size]);
        using var response = await client.SendAsync(request);
        Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "RequestTooLargeException"), Does.Contain(limit));
    }

    // A body that never ends, unsigned (refused at once, then read and dropped) or validly signed (read to the payload
    // limit, then refused): the emulator closes the connection once it has read the payload limit and 6 MB more. The
    // client counts what it could send before the connection broke; the sockets hold a few MB more in flight.
    [TestCase(false, null)]
    [TestCase(false, "Event")]
    [TestCase(true, null)]
    [TestCase(true, "Event")]
    public async Task ClosesAConnectionWhoseBodyNeverEnds(bool signed, string? invocationType)
    {
        const long GiveUpAt = 256L * 1024 * 1024;
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true });
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, emulator.Endpoint.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(EndlessHead(emulator, signed, invocationType)));

        byte[] chunk = Encoding.ASCII.GetBytes("10000\r\n" + new string('1', 0x10000) + "\r\n");
        long sent = 0;
        try
        {
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (sent < GiveUpAt)
            {
                await stream.WriteAsync(chunk, patience.Token);
                sent += chunk.Length;
            }
        }
        catch (IOException)
        {
            // The emulator closed the connection.
        }

        long limit = invocationType == "Event" ? LambdaEmulator.MaxEventPayload : LambdaEmulator.MaxRequestResponsePayload;
        TestContext.Out.WriteLine($"{sent:N0} bytes sent before the emulator closed the connection");
        Assert.That(emulator.Counters.SignatureFailures, Is.EqualTo(signed ? 0 : 1), "refused at once, or read to the limit");
        Assert.That(sent, Is.LessThan(limit + LambdaEmulator.MaxRequestResponsePayload + 32L * 1024 * 1024),
            $"{sent:N0} bytes sent before the emulator closed the connection");
    }

    // The request line and headers of a chunked Invoke; signed (with an unsigned payload, as the body is not known)
    // when asked.
    private static string EndlessHead(LambdaEmulator emulator, bool signed, string? invocationType)
    {
        string host = emulator.Endpoint.Authority, path = "/" + InvokePath("endless");
        var headers = new List<KeyValuePair<string, string>> { new("Host", host) };
        if (invocationType is not null) headers.Add(new("X-Amz-Invocation-Type", invocationType));
        if (signed)
        {
            var signature = SigV4.Sign("POST", path, "", headers, SigV4.UnsignedPayload, DateTimeOffset.UtcNow, ExampleCredentials,
                new SigV4Options("lambda", "us-east-1") { AddContentSha256Header = true });
            headers.AddRange(signature.HeadersToAdd);
        }
        var head = new StringBuilder($"POST {path} HTTP/1.1\r\n");
        foreach (var (name, value) in headers) head.Append(name).Append(": ").Append(value).Append("\r\n");
        return head.Append("Transfer-Encoding: chunked\r\n\r\n").ToString();
    }

    [Test]
    public async Task ClosesAConnectionPastMaxConcurrentConnections()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { MaxConcurrentConnections = 3 });
        var open = new List<System.Net.Sockets.TcpClient>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var tcp = new System.Net.Sockets.TcpClient();
                open.Add(tcp);
                Assert.That(await AskAsync(tcp, emulator), Does.StartWith("HTTP/1.1 403"), "a connection within the limit is served");
            }
            using (var fourth = new System.Net.Sockets.TcpClient())
                Assert.That(await AskAsync(fourth, emulator), Is.Empty, "the fourth connection is closed unanswered");

            open[0].Dispose();
            string answer = "";
            for (var deadline = DateTime.UtcNow + Patience; answer.Length == 0 && DateTime.UtcNow < deadline; await Task.Delay(20))
            {
                using var next = new System.Net.Sockets.TcpClient();
                answer = await AskAsync(next, emulator);
            }
            Assert.That(answer, Does.StartWith("HTTP/1.1 403"), "a connection is served again once one has closed");
        }
        finally
        {
            foreach (var tcp in open) tcp.Dispose();
        }
    }

    // Connects (if not yet), sends an unsigned Invoke and returns the status line and headers, or "" when the
    // emulator closed the connection instead.
    private static async Task<string> AskAsync(System.Net.Sockets.TcpClient tcp, LambdaEmulator emulator)
    {
        if (!tcp.Connected) await tcp.ConnectAsync(IPAddress.Loopback, emulator.Endpoint.Port);
        var stream = tcp.GetStream();
        using var patience = new CancellationTokenSource(Patience);
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /{InvokePath("echo")} HTTP/1.1\r\nHost: {emulator.Endpoint.Authority}\r\nContent-Length: 2\r\n\r\n{{}}"), patience.Token);
            var answer = new StringBuilder();
            var buffer = new byte[4096];
            while (!answer.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                int read = await stream.ReadAsync(buffer, patience.Token);
                if (read == 0) break;
                answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            return answer.ToString();
        }
        catch (IOException)
        {
            return "";
        }
    }

    [Test]
    public void RefusesFewerThanOneConnection()
    {
        var e = Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LambdaEmulator.StartAsync(new LambdaEmulatorOptions { MaxConcurrentConnections = 0 }));
        Assert.That(e!.Message, Does.Contain("MaxConcurrentConnections must be at least 1"));
    }

    // Kestrel's request limits, set by the emulator: what one request's head may cost.
    [TestCase(101, 10, 10, HttpStatusCode.RequestHeaderFieldsTooLarge)]
    [TestCase(5, 8 * 1024, 10, HttpStatusCode.RequestHeaderFieldsTooLarge)]
    [TestCase(1, 10, 9 * 1024, HttpStatusCode.RequestUriTooLong)]
    [TestCase(90, 300, 200, HttpStatusCode.Forbidden)]
    public async Task RefusesAnOversizedRequestHead(int headerCount, int headerLength, int nameLength, HttpStatusCode expected)
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        using var client = UnsignedClient(emulator);
        using var request = Invoke(new string('f', nameLength));
        for (int i = 0; i < headerCount; i++)
            request.Headers.TryAddWithoutValidation("X-Pad-" + i, new string('p', headerLength));
        using var response = await client.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(expected));
        Assert.That(emulator.Counters.Requests, Is.EqualTo(expected == HttpStatusCode.Forbidden ? 1 : 0), "refused before the emulator sees it");
    }
}
