using System.Globalization;
using System.Net;
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
}
