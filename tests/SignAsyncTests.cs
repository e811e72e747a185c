using System.Text;
using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>Signing an HttpRequestMessage in place: re-signing, the payload hash choices, and every kind of body.</summary>
public class SignAsyncTests
{
    private const string HelloHash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; // SHA-256 of "hello"
    private static readonly byte[] Hello = "hello"u8.ToArray();

    private static SigV4Options Options(string service, DateTimeOffset? time = null, string? payloadHash = null) =>
        new(service, "us-east-1") { Clock = new ManualClock(time ?? Time), PayloadHash = payloadHash };

    private static string Single(HttpRequestMessage request, string name) => request.Headers.GetValues(name).Single();

    [Test]
    public async Task ReSigningReplacesTheSignature()
    {
        var clock = new ManualClock(Time);
        var options = new SigV4Options("s3", "us-east-1") { Clock = clock };
        var credentials = Credentials(Token);
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = new ByteArrayContent(Hello) };

        await SigV4.SignAsync(request, credentials, options);
        string firstAuthorization = Single(request, "Authorization");
        clock.Now = Time.AddMinutes(5);
        await SigV4.SignAsync(request, credentials, options);

        Assert.That(Single(request, "X-Amz-Date"), Is.EqualTo("20150830T124100Z"));
        Assert.That(Single(request, "X-Amz-Security-Token"), Is.EqualTo(Token));
        Assert.That(Single(request, "x-amz-content-sha256"), Is.EqualTo(HelloHash));
        const string signedHeaders = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token";
        const string expected =
            "PUT\n/key\n\n" +
            "host:my-bucket.s3.us-east-1.amazonaws.com\n" +
            "x-amz-content-sha256:" + HelloHash + "\n" +
            "x-amz-date:20150830T124100Z\n" +
            "x-amz-security-token:" + Token + "\n" +
            "\n" + signedHeaders + "\n" + HelloHash;
        Assert.That(Single(request, "Authorization"), Is.EqualTo(Authorization(expected, signedHeaders, "20150830T124100Z", "us-east-1", "s3")));
        Assert.That(Single(request, "Authorization"), Is.Not.EqualTo(firstAuthorization));
        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello));
    }

    [Test]
    public async Task ExplicitContentSha256Header_IsThePayloadHash()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/") { Content = new ByteArrayContent(Hello) };
        request.Headers.Add("x-amz-content-sha256", SigV4.UnsignedPayload);

        var signature = await SigV4.SignAsync(request, Credentials(), Options("lambda"));

        const string expected = "POST\n/\n\nhost:example.amazonaws.com\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20150830T123600Z\n\n" +
            "host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD";
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(request.Headers.GetValues("x-amz-content-sha256"), Is.EqualTo(new[] { SigV4.UnsignedPayload }));
    }

    [Test]
    public async Task ExplicitContentSha256Header_S3_IsNeitherDuplicatedNorRemovedOnReSigning()
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = new ByteArrayContent(Hello) };
        request.Headers.Add("x-amz-content-sha256", HelloHash);

        await SigV4.SignAsync(request, Credentials(), Options("s3"));
        var signature = await SigV4.SignAsync(request, Credentials(), Options("s3"));

        Assert.That(request.Headers.GetValues("x-amz-content-sha256"), Is.EqualTo(new[] { HelloHash }));
        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(HelloHash));
        Assert.That(signature.SignedHeaders, Is.EqualTo("host;x-amz-content-sha256;x-amz-date"));
    }

    [Test]
    public async Task PayloadHashOption_UnsignedPayload_DoesNotReadTheBody()
    {
        var stream = new ReadOnceStream(Hello);
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/") { Content = new StreamContent(stream) };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("lambda", payloadHash: SigV4.UnsignedPayload));

        const string expected = "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\nUNSIGNED-PAYLOAD";
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(stream.BytesRead, Is.Zero);
        Assert.That(request.Headers.Contains("x-amz-content-sha256"), Is.False, "lambda does not add the header");
    }

    [Test]
    public async Task PayloadHashOption_Precomputed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = new StreamContent(new ReadOnceStream(Hello)) };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("s3", payloadHash: HelloHash));

        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(HelloHash));
        Assert.That(Single(request, "x-amz-content-sha256"), Is.EqualTo(HelloHash));
        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello));
    }

    private static IEnumerable<TestCaseData> Bodies()
    {
        yield return new TestCaseData("StringContent", (Func<HttpContent>)(() => new StringContent("hello", Encoding.UTF8, "text/plain")), "content-type:text/plain; charset=utf-8\n");
        yield return new TestCaseData("ByteArrayContent", (Func<HttpContent>)(() => new ByteArrayContent(Hello)), "");
        yield return new TestCaseData("ReadOnlyMemoryContent", (Func<HttpContent>)(() => new ReadOnlyMemoryContent(Hello)), "");
        yield return new TestCaseData("seekable StreamContent", (Func<HttpContent>)(() => new StreamContent(new MemoryStream(Hello))), "");
        yield return new TestCaseData("non-seekable StreamContent", (Func<HttpContent>)(() => new StreamContent(new ReadOnceStream(Hello))), "");
    }

    [TestCaseSource(nameof(Bodies))]
    public async Task Lambda_HashesEveryKindOfBody_AndLeavesItIntact(string kind, Func<HttpContent> makeContent, string contentTypeLine)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/f/invocations") { Content = makeContent() };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("lambda"));

        string signedHeaders = (contentTypeLine.Length > 0 ? "content-type;" : "") + "host;x-amz-date";
        string expected = "POST\n/2015-03-31/functions/f/invocations\n\n" + contentTypeLine +
            "host:lambda.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\n" + signedHeaders + "\n" + HelloHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected), kind);
        Assert.That(Single(request, "Authorization"), Is.EqualTo(Authorization(expected, signedHeaders, AmzDate, "us-east-1", "lambda")));
        Assert.That(await request.Content!.ReadAsByteArrayAsync(), Is.EqualTo(Hello), "the body is still whole after hashing");
    }

    [Test]
    public async Task S3_NonSeekableStream_IsUnsignedPayload_AndNotRead()
    {
        var stream = new ReadOnceStream(Hello);
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = new StreamContent(stream) };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("s3"));

        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(SigV4.UnsignedPayload));
        Assert.That(Single(request, "x-amz-content-sha256"), Is.EqualTo(SigV4.UnsignedPayload));
        Assert.That(stream.BytesRead, Is.Zero, "the upload can stream");
        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello));
    }

    [Test]
    public async Task S3_SeekableStream_IsHashed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = new StreamContent(new MemoryStream(Hello)) };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("s3"));

        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(HelloHash));
        Assert.That(Single(request, "x-amz-content-sha256"), Is.EqualTo(HelloHash));
        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello));
    }

    // A stream read once with its length given (a network or pipe stream whose size is known): its length says
    // nothing about whether it can be read twice.
    [Test]
    public async Task Lambda_NonSeekableStreamWithAKnownLength_IsStillWholeAfterHashing()
    {
        var content = new StreamContent(new ReadOnceStream(Hello));
        content.Headers.ContentLength = Hello.Length;
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/") { Content = content };

        var signature = await SigV4.SignAsync(request, Credentials(), Options("lambda"));

        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(HelloHash));
        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello), "the body is still whole after hashing");
    }

    [Test]
    public async Task S3_NonSeekableStreamWithAKnownLength_IsStillWholeAfterSigning()
    {
        var content = new StreamContent(new ReadOnceStream(Hello));
        content.Headers.ContentLength = Hello.Length;
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://my-bucket.s3.us-east-1.amazonaws.com/key") { Content = content };

        await SigV4.SignAsync(request, Credentials(), Options("s3"));

        Assert.That(await request.Content.ReadAsByteArrayAsync(), Is.EqualTo(Hello), "the body is still whole after signing");
    }

    [Test]
    public async Task NoBody_IsTheEmptyHash()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.amazonaws.com/");

        var signature = await SigV4.SignAsync(request, Credentials(), Options("lambda"));

        Assert.That(PayloadHashLine(signature.CanonicalRequest), Is.EqualTo(EmptyHash));
    }
}
