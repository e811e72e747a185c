using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>Bad input: the exact exception type, a message that names the problem and the fix, and never a secret
/// or a session token in a message or a ToString().</summary>
public class BadInputTests
{
    private static readonly SigV4Options Generic = new("service", "us-east-1");
    private static readonly List<KeyValuePair<string, string>> HostOnly = Headers(("Host", "example.amazonaws.com"));

    private static SigV4Signature Sign(IReadOnlyList<KeyValuePair<string, string>> headers, string payloadHash = EmptyHash, SigV4Options? options = null, string query = "") =>
        SigV4.Sign("GET", "/", query, headers, payloadHash, Time, Credentials(Token), options ?? Generic);

    // ----- credentials -----

    [TestCase("", TestName = "Access key id: empty")]
    [TestCase("   ", TestName = "Access key id: white space")]
    [TestCase("AKID EXAMPLE", TestName = "Access key id: inner space")]
    public void BadAccessKeyId(string accessKeyId)
    {
        var e = Assert.Throws<ArgumentException>(() => new AwsCredentials(accessKeyId, Secret, Token))!;
        AssertHelpful(e, "access key id", "AKIA");
        Assert.That(e.ParamName, Is.EqualTo("accessKeyId"));
    }

    [TestCase("", TestName = "Secret: empty")]
    [TestCase("  \t ", TestName = "Secret: white space")]
    [TestCase(Secret + " ", TestName = "Secret: trailing space")]
    [TestCase(Secret + "\n", TestName = "Secret: trailing newline")]
    public void BadSecret(string secret)
    {
        var e = Assert.Throws<ArgumentException>(() => new AwsCredentials(AccessKeyId, secret, Token))!;
        AssertHelpful(e, "secret access key", AccessKeyId);
        Assert.That(e.ParamName, Is.EqualTo("secretAccessKey"));
    }

    [TestCase("", TestName = "Session token: empty")]
    [TestCase(" ", TestName = "Session token: white space")]
    [TestCase(Token + "\r\n", TestName = "Session token: trailing CR LF")]
    public void BadSessionToken(string token)
    {
        var e = Assert.Throws<ArgumentException>(() => new AwsCredentials(AccessKeyId, Secret, token))!;
        AssertHelpful(e, "session token", "null");
        Assert.That(e.ParamName, Is.EqualTo("sessionToken"));
    }

    // ----- options -----

    [TestCase("", TestName = "Region: empty")]
    [TestCase("  ", TestName = "Region: white space")]
    [TestCase("us east 1", TestName = "Region: inner spaces")]
    public void BadRegion(string region)
    {
        var e = Assert.Throws<ArgumentException>(() => new SigV4Options("lambda", region))!;
        AssertHelpful(e, "region", "us-east-1");
        Assert.That(e.ParamName, Is.EqualTo("region"));
    }

    [TestCase("", TestName = "Service: empty")]
    [TestCase(" ", TestName = "Service: white space")]
    [TestCase("lam\nbda", TestName = "Service: newline")]
    public void BadService(string service)
    {
        var e = Assert.Throws<ArgumentException>(() => new SigV4Options(service, "us-east-1"))!;
        AssertHelpful(e, "service", "lambda");
        Assert.That(e.ParamName, Is.EqualTo("service"));
    }

    [Test]
    public void RegionSetNeedsSigV4a()
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(HostOnly, options: new SigV4Options("s3", "us-east-1,us-west-2")))!;
        AssertHelpful(e, "us-east-1,us-west-2", "region set", "SigV4a");
    }

    // ----- headers -----

    [TestCase("a\r\nInjected: b", TestName = "Header value: CR LF (plain values)")]
    [TestCase("a\nb", TestName = "Header value: LF (plain values)")]
    [TestCase("a\rb", TestName = "Header value: CR (plain values)")]
    public void LineBreakInHeaderValue(string value)
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("Host", "example.amazonaws.com"), ("x-amz-meta-a", value))))!;
        AssertHelpful(e, "x-amz-meta-a", "CR or LF", "Remove");
    }

    [TestCase("a\0b", 0x00, TestName = "Header value: NUL (plain values)")]
    [TestCase("a\u0001b", 0x01, TestName = "Header value: U+0001 (plain values)")]
    [TestCase("a\u000Bb", 0x0B, TestName = "Header value: vertical tab (plain values)")]
    [TestCase("a\u001Fb", 0x1F, TestName = "Header value: U+001F (plain values)")]
    [TestCase("a\u007Fb", 0x7F, TestName = "Header value: DEL (plain values)")]
    public void ControlCharacterInHeaderValue(string value, int control)
    {
        const string secretLooking = "wJalrXUtnFEMI";
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("Host", "example.amazonaws.com"), ("x-amz-meta-a", secretLooking + value))))!;
        AssertHelpful(e, "x-amz-meta-a", $"U+{control:X4}", "tab", "Remove");
        Assert.That(e.ParamName, Is.EqualTo("headers"));
        Assert.That(e.Message, Does.Not.Contain(secretLooking), "the value is never shown");
    }

    [Test]
    public void TabAndNonAsciiInHeaderValue_AreSigned()
    {
        var signature = Sign(Headers(("Host", "example.amazonaws.com"), ("x-amz-meta-a", "a\tb \u00e9")));
        Assert.That(signature.CanonicalRequest.Split('\n'), Does.Contain("x-amz-meta-a:a b \u00e9"), "a tab is white space, collapsed");
    }

    [Test]
    public async Task ControlCharacterInHeaderValue_ThroughTheHandler_NothingIsSent()
    {
        await using var server = new LoopbackServer();
        using var client = new HttpClient(new SigV4Handler(Credentials(Token), Generic));
        using var request = new HttpRequestMessage(HttpMethod.Get, server.BaseAddress + "/");
        Assert.That(request.Headers.TryAddWithoutValidation("x-amz-meta-a", "a\0b"), Is.True, "HttpHeaders accepts it without validation");

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.SendAsync(request))!;

        AssertHelpful(e, "x-amz-meta-a", "U+0000");
        await server.DisposeAsync();
        Assert.That(server.Requests, Is.Empty);
    }

    [TestCase("a\r\nInjected: b", TestName = "Header value: CR LF (HttpRequestMessage)")]
    [TestCase("a\nb", TestName = "Header value: LF (HttpRequestMessage)")]
    public void LineBreakInHeaderValue_HttpRequestMessage(string value)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.amazonaws.com/");
        Assert.That(request.Headers.TryAddWithoutValidation("x-amz-meta-a", value), Is.True, "HttpHeaders accepts it without validation");

        var e = Assert.ThrowsAsync<ArgumentException>(async () => await SigV4.SignAsync(request, Credentials(Token), Generic))!;
        AssertHelpful(e, "x-amz-meta-a", "CR or LF");
        Assert.That(request.Headers.Contains("Authorization"), Is.False, "nothing is signed");
    }

    [Test]
    public void LineBreakInContentHeaderValue_HttpRequestMessage()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/") { Content = new ByteArrayContent([1]) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "text/plain\r\nX-Injected: 1");

        var e = Assert.ThrowsAsync<ArgumentException>(async () => await SigV4.SignAsync(request, Credentials(Token), Generic))!;
        AssertHelpful(e, "Content-Type", "CR or LF");
    }

    [Test]
    public void MissingHost()
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("x-amz-meta-a", "1"))))!;
        AssertHelpful(e, "Host", "Add");
    }

    // ----- URIs -----

    [Test]
    public void RelativeUri()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/2015-03-31/functions", UriKind.Relative));

        var e = Assert.ThrowsAsync<ArgumentException>(async () => await SigV4.SignAsync(request, Credentials(Token), Generic))!;
        AssertHelpful(e, "relative", "absolute", "https://");
    }

    [Test]
    public void NoUri()
    {
        using var request = new HttpRequestMessage();

        var e = Assert.ThrowsAsync<ArgumentException>(async () => await SigV4.SignAsync(request, Credentials(Token), Generic))!;
        AssertHelpful(e, "RequestUri", "absolute");
    }

    [Test]
    public void RelativeUriToPresign()
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.Presign(HttpMethod.Get, new Uri("file.txt", UriKind.Relative), TimeSpan.FromMinutes(1), Credentials(Token), Generic))!;
        AssertHelpful(e, "relative", "absolute");
    }

    // ----- already signed -----

    [TestCase("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=00")]
    [TestCase("X-Amz-Date", AmzDate)]
    [TestCase("x-amz-date", AmzDate)]
    public void AlreadySignedHeaders(string name, string value)
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("Host", "example.amazonaws.com"), (name, value))))!;
        AssertHelpful(e, "already signed", name, "unsigned");
    }

    [Test]
    public void AlreadyPresignedQuery()
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.Presign("GET", "/", "a=1&X-Amz-Signature=abc", HostOnly, EmptyHash, Time,
            TimeSpan.FromMinutes(1), Credentials(Token), Generic))!;
        AssertHelpful(e, "X-Amz-Signature", "already presigned");
    }

    // A query that already holds a presigning parameter would have it signed next to the presigner's own: a server
    // reading the first X-Amz-Expires would see the caller's expiry.
    [TestCase("X-Amz-Expires=604800", "X-Amz-Expires")]
    [TestCase("a=1&x-amz-expires=604800", "X-Amz-Expires")]
    [TestCase("X%2DAmz%2DExpires=604800", "X-Amz-Expires")]
    [TestCase("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm")]
    [TestCase("X-Amz-Credential=AKIDOTHER%2F20150830%2Fus-east-1%2Fservice%2Faws4_request", "X-Amz-Credential")]
    [TestCase("X-Amz-Date=20990101T000000Z", "X-Amz-Date")]
    [TestCase("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders")]
    [TestCase("X-Amz-Security-Token=other", "X-Amz-Security-Token")]
    [TestCase("X-Amz-Region-Set=*", "X-Amz-Region-Set")]
    public void PresignedQueryWithAPresigningParameter_IsRefused(string query, string name)
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.Presign("GET", "/", query, HostOnly, EmptyHash, Time,
            TimeSpan.FromMinutes(1), Credentials(Token), Generic))!;
        Assert.That(e.ParamName, Is.EqualTo("query"));
        AssertHelpful(e, "already has " + name, "Remove it");

        var uri = new Uri("https://example.amazonaws.com/?" + query);
        var e2 = Assert.Throws<ArgumentException>(() => SigV4.Presign(HttpMethod.Get, uri, TimeSpan.FromMinutes(1), Credentials(Token), Generic))!;
        AssertHelpful(e2, "already has " + name);
    }

    [Test]
    public void HeaderSignedQueryMayHoldThem() =>
        Assert.That(Sign(HostOnly, query: "X-Amz-Expires=60").Authorization, Is.Not.Null, "only a presigned URL adds those parameters");

    [Test]
    public void SessionTokenHeaderAlreadyThere()
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("Host", "example.amazonaws.com"), ("X-Amz-Security-Token", Token))))!;
        AssertHelpful(e, "X-Amz-Security-Token", "remove");
    }

    // ----- payload hash -----

    [TestCase("", TestName = "Payload hash: empty")]
    [TestCase("abc", TestName = "Payload hash: too short")]
    [TestCase("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", TestName = "Payload hash: uppercase hex")]
    [TestCase("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", TestName = "Payload hash: 63 digits")]
    [TestCase("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", TestName = "Payload hash: not hex")]
    [TestCase("unsigned-payload", TestName = "Payload hash: lowercase UNSIGNED-PAYLOAD")]
    public void MalformedPayloadHash(string payloadHash)
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(HostOnly, payloadHash))!;
        AssertHelpful(e, "payload hash", "64 lowercase hex", "UNSIGNED-PAYLOAD");
    }

    [Test]
    public void MalformedPayloadHashInOptions()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.amazonaws.com/");

        var e = Assert.ThrowsAsync<ArgumentException>(async () =>
            await SigV4.SignAsync(request, Credentials(Token), new SigV4Options("service", "us-east-1") { PayloadHash = "sha256:abc" }))!;
        AssertHelpful(e, "sha256:abc", "64 lowercase hex");
    }

    [Test]
    public void ContentSha256HeaderDiffersFromPayloadHash()
    {
        var e = Assert.Throws<ArgumentException>(() => Sign(Headers(("Host", "example.amazonaws.com"), ("x-amz-content-sha256", SigV4.UnsignedPayload))))!;
        AssertHelpful(e, "x-amz-content-sha256", "payload hash", "same");
    }

    // ----- ToString -----

    [Test]
    public void CredentialsToStringHidesSecrets()
    {
        var credentials = new AwsCredentials(AccessKeyId, Secret, Token, new DateTimeOffset(2015, 8, 30, 13, 0, 0, TimeSpan.Zero));

        string text = credentials.ToString();

        Assert.That(text, Does.Contain(AccessKeyId));
        Assert.That(text, Does.Contain("2015-08-30T13:00:00Z"));
        Assert.That(text, Does.Not.Contain(Secret));
        Assert.That(text, Does.Not.Contain(Token));
        Assert.That(text, Does.Not.Contain(Secret[..8]), "not even part of the secret");
    }

    [Test]
    public void OptionsToStringShowsTheChoices()
    {
        string text = new SigV4Options("s3", "eu-west-1") { SignSessionToken = false }.ToString();

        Assert.That(text, Does.Contain("s3"));
        Assert.That(text, Does.Contain("eu-west-1"));
        Assert.That(text, Does.Contain("SignSessionToken = False"));
        Assert.That(text, Does.Not.Contain(Secret));
    }

    [Test]
    public void SignatureToStringHidesSecrets()
    {
        var credentials = Credentials(Token);
        var header = SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, credentials, Generic);
        var query = SigV4.Presign("GET", "/", "", HostOnly, EmptyHash, Time, TimeSpan.FromMinutes(5), credentials, Generic);
        var unsignedToken = SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, credentials, new SigV4Options("service", "us-east-1") { SignSessionToken = false });

        foreach (var signature in new[] { header, query, unsignedToken })
        {
            string text = signature.ToString();
            Assert.That(text, Does.Contain("20150830/us-east-1/service/aws4_request"));
            Assert.That(text, Does.Not.Contain(Secret));
            Assert.That(text, Does.Not.Contain(Token));
            Assert.That(text, Does.Not.Contain(Uri.EscapeDataString(Token)));
        }
        Assert.That(default(SigV4Signature).ToString(), Is.EqualTo("SigV4Signature { }"));
    }
}
