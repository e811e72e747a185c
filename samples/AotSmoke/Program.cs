// Native AOT smoke test: signs (SigV4 and SigV4a), verifies, reads credentials through the chain, and invokes
// Lambda (one call, a fan-out, JSON through a source-generated context, a response stream) against an in-process
// stub handler.
// Exit code 0 when every step gave the expected answer.
using System.Net;
using System.Text.Json.Serialization;
using SigV4Lite;

var failures = new List<string>();
void Check(bool ok, string what) { if (!ok) failures.Add(what); }

var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
var time = new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
KeyValuePair<string, string>[] host = [new("Host", "example.amazonaws.com")];

// The suite's get-vanilla case.
var v4 = SigV4.Sign("GET", "/", "", host, SigV4.EmptyPayloadHash, time, credentials, new SigV4Options("service", "us-east-1"));
Check(v4.Signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", "SigV4 signature of get-vanilla");

var v4aOptions = new SigV4Options("service", "us-east-1") { Algorithm = SigningAlgorithm.SigV4a };
var v4a = SigV4.Sign("GET", "/", "", host, SigV4.EmptyPayloadHash, time, credentials, v4aOptions);
Check(SigV4.VerifySigV4a(v4a.StringToSign, v4a.Signature, SigV4.GetSigV4aPublicKey(credentials)), "SigV4a signature verifies");

var verifier = new SigV4Verifier(id => id == credentials.AccessKeyId ? credentials : null, new SigV4Options("service", "us-east-1")) { Clock = new FixedClock(time) };
var received = host.Concat(v4.HeadersToAdd).ToList();
Check(verifier.Verify("GET", "/", "", received, []).IsValid, "verifier accepts the signed request");
Check(verifier.Verify("GET", "/x", "", received, []).Error == SigV4VerificationError.SignatureMismatch, "verifier rejects a changed path");

var chain = AwsCredentialsChain.CreateDefault(new AwsConfigOptions
{
    GetEnvironmentVariable = name => name switch { "AWS_ACCESS_KEY_ID" => "AKIDFROMENV", "AWS_SECRET_ACCESS_KEY" => "secret-from-env", _ => null },
});
Check((await chain.GetCredentialsAsync()).AccessKeyId == "AKIDFROMENV", "credentials chain reads the environment");

using var lambda = new LambdaClient(new AwsClientOptions
{
    Region = "us-east-1",
    Endpoint = new Uri("http://127.0.0.1:9/"),
    Credentials = credentials,
    HttpHandler = new StubLambda(),
});
var answer = await lambda.InvokeAsync(LambdaRequest.FromJson("greeter", new Greeting { Name = "aot" }, SmokeJson.Default.Greeting));
Check(answer.DeserializePayload(SmokeJson.Default.Greeting)?.Name == "hello aot", "invoke with JsonTypeInfo round-trips");
try
{
    await lambda.InvokeAsync(new LambdaRequest("crash", "{}"));
    failures.Add("a function error throws");
}
catch (LambdaFunctionException e) { Check(e.ErrorType == "Boom" && e.ErrorMessage == "it broke", "function error carries type and message"); }

var requests = Enumerable.Range(0, 50).Select(i => new LambdaRequest("greeter", $$"""{"Name":"{{i}}"}"""));
var all = await lambda.InvokeAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 8 });
Check(all.Select((r, i) => r.GetPayloadString() == $$"""{"Name":"hello {{i}}"}""").All(ok => ok), "fan-out results in input order");

await using (var stream = await lambda.InvokeWithResponseStreamAsync(new LambdaRequest("streamer", "{}") { LogType = LambdaLogType.Tail }))
{
    var text = new System.Text.StringBuilder();
    await foreach (var chunk in stream.ReadChunksAsync()) text.Append(System.Text.Encoding.UTF8.GetString(chunk.Span));
    Check(text.ToString() == "one two" && stream.Log == "streamed\n", "response stream's chunks and log");
}

foreach (var failure in failures) Console.Error.WriteLine("AOT smoke FAILED: " + failure);
Console.WriteLine(failures.Count == 0 ? "AOT smoke: ok" : $"AOT smoke: {failures.Count} failed");
return failures.Count == 0 ? 0 : 1;

sealed class Greeting
{
    public string Name { get; set; } = "";
}

[JsonSerializable(typeof(Greeting))]
sealed partial class SmokeJson : JsonSerializerContext;

sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

// Answers like Lambda: the greeter prefixes "hello " to Name; "crash" answers a function error; a response stream
// is two chunks, then InvokeComplete with the log.
sealed class StubLambda : HttpMessageHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Headers.Contains("Authorization")) return new HttpResponseMessage(HttpStatusCode.Forbidden);
        var response = new HttpResponseMessage(HttpStatusCode.OK);
        if (request.RequestUri!.AbsolutePath.EndsWith("/response-streaming-invocations", StringComparison.Ordinal))
        {
            response.Content = new ByteArrayContent([.. Event("PayloadChunk", "one "u8), .. Event("PayloadChunk", "two"u8),
                .. Event("InvokeComplete", "{\"LogResult\":\"c3RyZWFtZWQK\"}"u8)]);
            return response;
        }
        if (request.RequestUri!.AbsolutePath.Contains("/crash/", StringComparison.Ordinal))
        {
            response.Headers.Add("X-Amz-Function-Error", "Unhandled");
            response.Content = new StringContent("""{"errorMessage":"it broke","errorType":"Boom","stackTrace":[]}""");
            return response;
        }
        var body = await request.Content!.ReadAsStringAsync(cancellationToken);
        response.Content = new StringContent(body.Replace("\"Name\":\"", "\"Name\":\"hello ", StringComparison.Ordinal));
        return response;
    }

    private static byte[] Event(string type, ReadOnlySpan<byte> payload) =>
        EventStreamEncoder.Encode([new(":message-type", "event"), new(":event-type", type)], payload);
}
