using System.Net;
using System.Text;

namespace SigV4Lite.Tests;

/// <summary>
/// Prepared request shapes (SigV4Template): SigV4.Sign prepares a shape a thread signs twice in a row, and the send
/// pipeline one per path; signing through a shape must give exactly the signature of the general path, and must
/// never sign a stale shape (a header list changed in place, another session token, another operation on the path).
/// </summary>
public class SigningTemplateTests
{
    private static readonly SigV4Options Options = new("lambda", "us-east-1");
    private const string Path = "/2015-03-31/functions/my-function/invocations";

    // The signature of the general path, computed on a thread of its own (its memo empty), from the canonical
    // request written out independently.
    private static string Expected(string path, IReadOnlyList<KeyValuePair<string, string>> headers, string payloadHash, DateTimeOffset time, string? token = null)
    {
        var lines = headers.Select(h => (Name: h.Key.ToLowerInvariant(), Value: h.Value.Trim()))
            .Append(("x-amz-date", time.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'")))
            .Concat(token is null ? [] : [("x-amz-security-token", token)])
            .OrderBy(h => h.Item1, StringComparer.Ordinal).ToList();
        string canonical = $"POST\n{path}\n\n{string.Concat(lines.Select(l => $"{l.Item1}:{l.Item2}\n"))}\n{string.Join(';', lines.Select(l => l.Item1))}\n{payloadHash}";
        return Reference.Signature(canonical, time.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'"), "us-east-1", "lambda");
    }

    private static string SignatureOf(SigV4Signature signature) => signature.Authorization![(signature.Authorization!.LastIndexOf('=') + 1)..];

    [Test]
    public void SigningTheSameShapeManyTimesGivesTheGeneralPathsSignatureEachTime()
    {
        var headers = Reference.Headers(("Host", "lambda.us-east-1.amazonaws.com"), ("Content-Type", "application/json"));
        var credentials = Reference.Credentials();
        var signatures = new List<SigV4Signature>();
        for (int i = 0; i < 5; i++)
        {
            string hash = Reference.Sha256Hex($"{{\"n\":{i}}}");
            var time = Reference.Time.AddSeconds(i * 7);
            var signature = SigV4.Sign("POST", Path, "", headers, hash, time, credentials, Options);
            Assert.That(SignatureOf(signature), Is.EqualTo(Expected(Path, headers, hash, time)), $"signature {i}");
            Assert.That(signature.AmzDate, Is.EqualTo(time.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'")));
            Assert.That(signature.Authorization, Does.Contain("SignedHeaders=content-type;host;x-amz-date, Signature="));
            signatures.Add(signature);
        }
        // What a signature describes is its own request, prepared or not.
        Assert.That(signatures[4].CanonicalRequest, Does.EndWith(Reference.Sha256Hex("{\"n\":4}")));
        Assert.That(signatures[4].CanonicalRequest, Does.Contain("x-amz-date:" + signatures[4].AmzDate));
    }

    [Test]
    public void AHeaderListChangedInPlaceIsSignedAsItNowIs()
    {
        var headers = Reference.Headers(("Host", "lambda.us-east-1.amazonaws.com"), ("X-Amz-Invocation-Type", "Event"));
        var credentials = Reference.Credentials();
        for (int i = 0; i < 3; i++) SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, credentials, Options);
        headers[1] = new("X-Amz-Invocation-Type", "DryRun");
        var signature = SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, credentials, Options);
        Assert.That(SignatureOf(signature), Is.EqualTo(Expected(Path, headers, Reference.EmptyHash, Reference.Time)));
        Assert.That(signature.CanonicalRequest, Does.Contain("x-amz-invocation-type:DryRun"));
    }

    [Test]
    public void AnotherSessionTokenOnTheSameShapeIsSignedWithItsToken()
    {
        var headers = Reference.Headers(("Host", "lambda.us-east-1.amazonaws.com"));
        for (int i = 0; i < 3; i++) SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, Reference.Credentials("first-token"), Options);
        var signature = SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, Reference.Credentials("second-token"), Options);
        Assert.That(SignatureOf(signature), Is.EqualTo(Expected(Path, headers, Reference.EmptyHash, Reference.Time, "second-token")));
        Assert.That(signature.HeadersToAdd, Does.Contain(new KeyValuePair<string, string>("X-Amz-Security-Token", "second-token")));
    }

    [Test]
    public void ABadPayloadHashIsRefusedOnAPreparedShapeToo()
    {
        var headers = Reference.Headers(("Host", "lambda.us-east-1.amazonaws.com"));
        var credentials = Reference.Credentials();
        for (int i = 0; i < 3; i++) SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, credentials, Options);
        var e = Assert.Throws<ArgumentException>(() => SigV4.Sign("POST", Path, "", headers, "ABC", Reference.Time, credentials, Options));
        Assert.That(e!.ParamName, Is.EqualTo("payloadHash"));
        Assert.That(e.Message, Does.Contain("neither 64 lowercase hex digits"));
    }

    [Test]
    public void AnEmptyPathIsTheShapeOfSlashAsItIsSigned()
    {
        var headers = Reference.Headers(("Host", "example.amazonaws.com"));
        var credentials = Reference.Credentials();
        var template = SigV4.CreateTemplate("POST", "", "", headers, Reference.Time, credentials, Options)!;
        Assert.That(template.Path, Is.EqualTo("/"));
        Assert.That((template.Method, template.Query, template.SessionToken, template.Headers.Length, ReferenceEquals(template.Options, Options)), Is.EqualTo(("POST", "", (string?)null, 1, true)));
        // Else a thread signing "" again and again would prepare a new shape on every call.
        Assert.That(template.Matches("POST", "", "", headers, null, Options), Is.True);
        Assert.That(template.Matches("POST", "/other", "", headers, null, Options), Is.False);
        for (int i = 0; i < 3; i++)
        {
            var signature = SigV4.Sign("POST", "", "", headers, Reference.EmptyHash, Reference.Time, credentials, Options);
            Assert.That(SignatureOf(signature), Is.EqualTo(Expected("/", headers, Reference.EmptyHash, Reference.Time)));
        }
    }

    [Test]
    public void APreparedShapeDoesNotOutliveAnOptionsChange()
    {
        var headers = Reference.Headers(("Host", "lambda.us-east-1.amazonaws.com"));
        var credentials = Reference.Credentials();
        for (int i = 0; i < 3; i++) SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, credentials, Options);
        var other = new SigV4Options("lambda", "eu-west-1");
        var signature = SigV4.Sign("POST", Path, "", headers, Reference.EmptyHash, Reference.Time, credentials, other);
        Assert.That(signature.CredentialScope, Is.EqualTo("20150830/eu-west-1/lambda/aws4_request"));
    }

    // The pipeline: every request a client sends verifies, whichever shapes share a path and however credentials change.
    [Test]
    public async Task ThePipelineSignsEveryShapeOnAPathSoThatItVerifies()
    {
        var provider = new SwitchingCredentials(Reference.Credentials("token-one"));
        var captured = new List<(string Method, string Path, string Query, List<KeyValuePair<string, string>> Headers, byte[] Body)>();
        var handler = new StubHandler(request =>
        {
            var headers = request.Headers.Select(h => new KeyValuePair<string, string>(h.Key, string.Join(",", h.Value))).ToList();
            headers.Add(new("Host", request.RequestUri!.Authority));
            byte[] body = request.Content?.ReadAsByteArrayAsync().GetAwaiter().GetResult() ?? [];
            if (request.Content is not null)
                headers.AddRange(request.Content.Headers.Select(h => new KeyValuePair<string, string>(h.Key, string.Join(",", h.Value))));
            lock (captured) captured.Add((request.Method.Method, request.RequestUri.AbsolutePath, request.RequestUri.Query.TrimStart('?'), headers, body));
            return StubHandler.Json(HttpStatusCode.OK, "{}");
        });
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Endpoint = new Uri("https://dynamodb.us-east-1.amazonaws.com"),
            Region = "us-east-1",
            Credentials = provider,
            HttpHandler = handler,
        });
        // Two operations on one path, in turns, each several times; then new credentials.
        for (int i = 0; i < 6; i++)
            await client.SendAsync(AwsRequest.AwsJson(i % 2 == 0 ? "DynamoDB_20120810.GetItem" : "DynamoDB_20120810.PutItem", $"{{\"i\":{i}}}"));
        provider.Current = Reference.Credentials("token-two");
        for (int i = 0; i < 2; i++) await client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}"));

        Assert.That(captured, Has.Count.EqualTo(8));
        var verifier = new SigV4Verifier(_ => Reference.Credentials(), new SigV4Options("dynamodb", "us-east-1"));
        foreach (var (request, index) in captured.Select((r, i) => (r, i)))
        {
            var result = verifier.Verify(request.Method, request.Path, request.Query, request.Headers, request.Body);
            Assert.That(result.IsValid, Is.True, $"request {index}: {result.Error} {result.Message}");
        }
        Assert.That(captured[1].Headers, Does.Contain(new KeyValuePair<string, string>("X-Amz-Target", "DynamoDB_20120810.PutItem")));
        Assert.That(captured[7].Headers, Does.Contain(new KeyValuePair<string, string>("X-Amz-Security-Token", "token-two")));
    }

    [Test]
    public async Task AFanOutOverManyFunctionsSignsEachInvocationForItsOwnFunctionAndPayload()
    {
        var seen = new List<(string Path, List<KeyValuePair<string, string>> Headers, byte[] Body)>();
        var handler = new StubHandler(request =>
        {
            var headers = request.Headers.Select(h => new KeyValuePair<string, string>(h.Key, string.Join(",", h.Value))).ToList();
            headers.Add(new("Host", request.RequestUri!.Authority));
            byte[] body = request.Content!.ReadAsByteArrayAsync().GetAwaiter().GetResult();
            lock (seen) seen.Add((request.RequestUri.AbsolutePath, headers, body));
            return StubHandler.Json(HttpStatusCode.OK, "{}");
        });
        using var client = StubHandler.Client(handler);
        var requests = Enumerable.Range(0, 60).Select(i => new LambdaRequest("fn-" + i % 3, $"{{\"i\":{i}}}"));
        var responses = await client.InvokeAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 8 });

        Assert.That(responses, Has.Count.EqualTo(60));
        var verifier = new SigV4Verifier(_ => EmulatorTestSupport.ExampleCredentials, new SigV4Options("lambda", "us-east-1"));
        foreach (var (path, headers, body) in seen)
        {
            var result = verifier.Verify("POST", path, "", headers, body);
            Assert.That(result.IsValid, Is.True, $"{path} {Encoding.UTF8.GetString(body)}: {result.Error} {result.Message}");
        }
        Assert.That(seen.Select(s => s.Path).Distinct().Count(), Is.EqualTo(3));
    }

    // A client keeps what it makes per path and query for the first 256 it sees; the rest are made per call and signed in
    // full. Both kinds verify.
    [Test]
    public async Task PathsBeyondWhatAClientKeepsAreSignedAsWell()
    {
        int valid = 0, sent = 0;
        var verifier = new SigV4Verifier(_ => EmulatorTestSupport.ExampleCredentials, new SigV4Options("lambda", "us-east-1"));
        var handler = new StubHandler(request =>
        {
            var headers = request.Headers.Select(h => new KeyValuePair<string, string>(h.Key, string.Join(",", h.Value))).ToList();
            headers.Add(new("Host", request.RequestUri!.Authority));
            byte[] body = request.Content!.ReadAsByteArrayAsync().GetAwaiter().GetResult();
            bool ok = verifier.Verify("POST", request.RequestUri.AbsolutePath, request.RequestUri.Query.TrimStart('?'), headers, body).IsValid;
            lock (verifier) { sent++; if (ok) valid++; }
            return StubHandler.Json(HttpStatusCode.OK, "{}");
        });
        using var client = StubHandler.Client(handler);
        var requests = Enumerable.Range(0, 600).Select(i => new LambdaRequest("many-" + i % 300, $"{{\"i\":{i}}}") { Qualifier = i % 2 == 0 ? null : "live" });
        var responses = await client.InvokeAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 8 });

        Assert.That(responses, Has.Count.EqualTo(600));
        Assert.That((sent, valid), Is.EqualTo((600, 600)));
    }

    private sealed class SwitchingCredentials(AwsCredentials first) : IAwsCredentialsProvider
    {
        public AwsCredentials Current { get; set; } = first;
        public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default) => new(Current);
    }
}
