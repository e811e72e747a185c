using System.Net;
using System.Text;
using System.Text.Json;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>The emulator's Invoke API, driven with HttpClient and the signer's handler, as an AWS client would.</summary>
public class EmulatorInvokeTests : SignedEmulatorFixture
{
    [Test]
    public void ListensOnLoopbackWithTheChosenPort()
    {
        Assert.That(Emulator.Endpoint.Host, Is.EqualTo("127.0.0.1"));
        Assert.That(Emulator.Endpoint.Port, Is.GreaterThan(0));
        Assert.That(Emulator.Endpoint.AbsolutePath, Is.EqualTo("/"));
    }

    [TestCase("forms", null, TestName = "name")]
    [TestCase("forms:v1", "v1", TestName = "name:version")]
    [TestCase("forms:prod_alias-2", "prod_alias-2", TestName = "name:alias")]
    [TestCase("forms:$LATEST", "$LATEST", TestName = "name:$LATEST")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:forms", null, TestName = "full ARN")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:forms:prod", "prod", TestName = "full ARN with qualifier")]
    [TestCase("arn:aws-cn:lambda:cn-north-1:123456789012:function:forms", null, TestName = "full ARN in another partition")]
    [TestCase("123456789012:function:forms", null, TestName = "partial ARN")]
    [TestCase("123456789012:function:forms:7", "7", TestName = "partial ARN with qualifier")]
    public async Task AcceptsEveryFunctionNameForm(string functionName, string? qualifier)
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("forms", function.Handle);

        // The name travels percent-encoded (':' as %3A, '$' as %24) and the request is signed over that path: a
        // 200 shows the emulator verified the path exactly as sent and decoded the name itself.
        using var request = Invoke(functionName, "{\"n\":1}");
        Assert.That(request.RequestUri!.OriginalString, Does.Not.Contain(":").And.Not.Contain("$"));
        using var response = await Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("{\"function\":\"forms\",\"payload\":{\"n\":1}}"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo(qualifier ?? "$LATEST"));
        Assert.That(function.Calls, Has.Count.EqualTo(1));
        Assert.That(function.Last.FunctionName, Is.EqualTo("forms"));
        Assert.That(function.Last.Qualifier, Is.EqualTo(qualifier));
        Assert.That(function.Last.InvocationType, Is.EqualTo("RequestResponse"));
        Assert.That(Header(response, "x-amzn-RequestId"), Is.EqualTo(function.Last.RequestId));
    }

    [Test]
    public async Task AcceptsANameWhoseColonsAreNotEncoded()
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("plain", function.Handle);
        using var request = new HttpRequestMessage(HttpMethod.Post, "2015-03-31/functions/123456789012:function:plain:v3/invocations")
        {
            Content = new ByteArrayContent("{}"u8.ToArray()),
        };
        using var response = await Client.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        Assert.That(function.Last.Qualifier, Is.EqualTo("v3"));
    }

    [TestCase("$LATEST")]
    [TestCase("12")]
    [TestCase("live")]
    public async Task TakesTheQualifierFromTheQuery(string qualifier)
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("query-qualifier", function.Handle);
        using var response = await Client.SendAsync(Invoke("query-qualifier", qualifier: qualifier));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        Assert.That(function.Last.Qualifier, Is.EqualTo(qualifier));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo(qualifier));
    }

    [Test]
    public async Task AcceptsTheSameQualifierInTheNameAndTheQuery()
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("same-qualifier", function.Handle);
        using var response = await Client.SendAsync(Invoke("same-qualifier:v1", qualifier: "v1"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(function.Last.Qualifier, Is.EqualTo("v1"));
    }

    [Test]
    public async Task RefusesDifferentQualifiersInTheNameAndTheQuery()
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("two-qualifiers", function.Handle);
        using var response = await Client.SendAsync(Invoke("two-qualifiers:v1", qualifier: "v2"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "InvalidParameterValueException");
        Assert.That(message, Does.Contain("qualifier"));
        Assert.That(function.Calls, Is.Empty);
    }

    [TestCase("has space", TestName = "a space")]
    [TestCase("x:y:z", TestName = "too many parts")]
    [TestCase("arn:aws:lambda:us-east-1:12345:function:short-account", TestName = "a short account id")]
    [TestCase("arn:aws:s3:us-east-1:123456789012:function:other-service", TestName = "another service's ARN")]
    [TestCase("fn:bad.qualifier", TestName = "a bad qualifier")]
    [TestCase("a-name-that-is-much-longer-than-the-sixty-four-characters-lambda-allows", TestName = "65 characters")]
    public async Task RefusesMalformedFunctionNames(string functionName)
    {
        using var response = await Client.SendAsync(Invoke(functionName));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "ValidationException");
        Assert.That(message, Does.Contain("'functionName'").And.Contain(functionName));
    }

    [Test]
    public async Task RefusesAMalformedQueryQualifier()
    {
        using var response = await Client.SendAsync(Invoke("echo-any", qualifier: "no/slash"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "ValidationException");
        Assert.That(message, Does.Contain("'qualifier'"));
    }

    [Test]
    public async Task AnswersAnUnknownFunctionWith404ResourceNotFound()
    {
        using var response = await Client.SendAsync(Invoke("arn:aws:lambda:us-east-1:210987654321:function:never-added:v9"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.NotFound, "ResourceNotFoundException");
        Assert.That(message, Is.EqualTo("Function not found: arn:aws:lambda:us-east-1:210987654321:function:never-added:v9"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.Null);
    }

    [Test]
    public async Task AnswersAnythingButInvokeWith404UnknownOperation()
    {
        using (var get = await Client.GetAsync(InvokePath("forms")))
            Assert.That(await AssertAwsErrorAsync(get, HttpStatusCode.NotFound, "UnknownOperationException"), Does.Contain("POST /2015-03-31/functions/{FunctionName}/invocations"));
        using (var list = await Client.PostAsync("2015-03-31/functions/", new ByteArrayContent([])))
            await AssertAwsErrorAsync(list, HttpStatusCode.NotFound, "UnknownOperationException");
        using (var nested = await Client.PostAsync("2015-03-31/functions/a/b/invocations", new ByteArrayContent([])))
            await AssertAwsErrorAsync(nested, HttpStatusCode.NotFound, "UnknownOperationException");
    }

    [Test]
    public async Task EchoesThePayloadAndTheName()
    {
        Emulator.AddFunction("echo", LambdaEmulator.Echo);
        using (var response = await Client.SendAsync(Invoke("echo", " [1, \"two\", {\"3\": null}] ")))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
            var body = await JsonBodyAsync(response);
            Assert.That(body.GetProperty("function").GetString(), Is.EqualTo("echo"));
            Assert.That(body.GetProperty("payload").GetRawText(), Is.EqualTo("[1, \"two\", {\"3\": null}]"));
        }
        using (var empty = await Client.SendAsync(Invoke("echo", payload: null)))
            Assert.That(await empty.Content.ReadAsStringAsync(), Is.EqualTo("{\"function\":\"echo\",\"payload\":null}"));
    }

    [Test]
    public async Task AnswersNullWhenTheFunctionReturnsNull()
    {
        Emulator.AddFunction("returns-null", (_, _) => new ValueTask<byte[]>((byte[])null!));
        using var response = await Client.SendAsync(Invoke("returns-null"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("null"));
    }

    [Test]
    public async Task GivesEveryAnswerItsOwnRequestId()
    {
        var ids = new HashSet<string>();
        using (var ok = await Client.SendAsync(Invoke("forms"))) ids.Add(Header(ok, "x-amzn-RequestId")!);
        using (var notFound = await Client.SendAsync(Invoke("not-there"))) ids.Add(Header(notFound, "x-amzn-RequestId")!);
        using (var unsigned = await UnsignedClient(Emulator).SendAsync(Invoke("forms"))) ids.Add(Header(unsigned, "x-amzn-RequestId")!);
        Assert.That(ids, Has.Count.EqualTo(3));
        Assert.That(ids, Has.All.Matches<string>(id => Guid.TryParse(id, out _)));
    }

    [Test]
    public async Task RunsAnEventInvocationInTheBackgroundAfterAnswering202()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ran = new TaskCompletionSource<LambdaInvocation>(TaskCreationOptions.RunContinuationsAsynchronously);
        Emulator.AddFunction("background", async (invocation, cancellationToken) =>
        {
            await release.Task.WaitAsync(cancellationToken);
            ran.SetResult(invocation);
            return [];
        });

        using var response = await Client.SendAsync(Invoke("background", "{\"job\":42}", invocationType: "Event"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(await response.Content.ReadAsByteArrayAsync(), Is.Empty);
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("$LATEST"));
        Assert.That(ran.Task.IsCompleted, Is.False, "the 202 came while the function was still waiting");

        release.SetResult();
        var invocation = await ran.Task.WaitAsync(Patience);
        Assert.That(invocation.InvocationType, Is.EqualTo("Event"));
        Assert.That(Encoding.UTF8.GetString(invocation.Payload.Span), Is.EqualTo("{\"job\":42}"));
        Assert.That(invocation.RequestId, Is.EqualTo(Header(response, "x-amzn-RequestId")));
    }

    [Test]
    public async Task AnswersADryRunWith204WithoutRunningTheFunction()
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("dry", function.Handle);
        using var response = await Client.SendAsync(Invoke("dry", invocationType: "DryRun", qualifier: "v4"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("v4"));
        Assert.That(function.Calls, Is.Empty);

        using var unknown = await Client.SendAsync(Invoke("dry-but-unknown", invocationType: "DryRun"));
        await AssertAwsErrorAsync(unknown, HttpStatusCode.NotFound, "ResourceNotFoundException");
    }

    [Test]
    public async Task RefusesAnUnknownInvocationTypeOrLogType()
    {
        using (var type = await Client.SendAsync(Invoke("forms", invocationType: "Later")))
            Assert.That(await AssertAwsErrorAsync(type, HttpStatusCode.BadRequest, "ValidationException"), Does.Contain("invocationType").And.Contain("Later"));
        using (var log = await Client.SendAsync(Invoke("forms", logType: "All")))
            Assert.That(await AssertAwsErrorAsync(log, HttpStatusCode.BadRequest, "ValidationException"), Does.Contain("logType"));
    }

    [Test]
    public async Task ReturnsTheLogTailWhenAsked()
    {
        Emulator.AddFunction("logs", (invocation, _) =>
        {
            invocation.Log("starting");
            invocation.Log("héllo wörld");
            return new ValueTask<byte[]>("{}"u8.ToArray());
        });
        using (var tail = await Client.SendAsync(Invoke("logs", logType: "Tail")))
        {
            Assert.That(tail.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            string log = Encoding.UTF8.GetString(Convert.FromBase64String(Header(tail, "X-Amz-Log-Result")!));
            Assert.That(log, Is.EqualTo("starting\nhéllo wörld\n"));
        }
        using (var none = await Client.SendAsync(Invoke("logs", logType: "None")))
            Assert.That(Header(none, "X-Amz-Log-Result"), Is.Null);
        using (var unasked = await Client.SendAsync(Invoke("logs")))
            Assert.That(Header(unasked, "X-Amz-Log-Result"), Is.Null);
    }

    [Test]
    public async Task ReturnsOnlyTheLast4KBOfALongLog()
    {
        Emulator.AddFunction("chatty", (invocation, _) =>
        {
            for (int i = 0; i < 500; i++) invocation.Log($"line {i:D4} " + new string('x', 40));
            return new ValueTask<byte[]>("{}"u8.ToArray());
        });
        using var response = await Client.SendAsync(Invoke("chatty", logType: "Tail"));
        byte[] log = Convert.FromBase64String(Header(response, "X-Amz-Log-Result")!);
        Assert.That(log, Has.Length.EqualTo(4096));
        Assert.That(Encoding.UTF8.GetString(log), Does.EndWith("line 0499 " + new string('x', 40) + "\n"));
        Assert.That(Encoding.UTF8.GetString(log), Does.Not.Contain("line 0400"));
    }

    [Test]
    public async Task HandsTheDecodedClientContextToTheFunction()
    {
        var function = new RecordingFunction("{}");
        Emulator.AddFunction("context", function.Handle);
        const string context = "{\"custom\":{\"tenant\":\"t-1\"},\"env\":{\"locale\":\"fr\"}}";
        using var response = await Client.SendAsync(Invoke("context", clientContext: Convert.ToBase64String(Encoding.UTF8.GetBytes(context))));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(function.Last.ClientContext, Is.EqualTo(context));

        using var without = await Client.SendAsync(Invoke("context"));
        Assert.That(function.Last.ClientContext, Is.Null);
    }

    [TestCase("not base64!", TestName = "not base64")]
    [TestCase("WzEsMl0=", TestName = "base64 of a JSON array")]
    [TestCase("e25vdCBqc29u", TestName = "base64 of broken JSON")]
    public async Task RefusesAClientContextThatIsNotBase64JsonObject(string clientContext)
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("bad-context", function.Handle);
        using var response = await Client.SendAsync(Invoke("bad-context", clientContext: clientContext));
        Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "InvalidRequestContentException"), Does.Contain("Base64-encoded JSON"));
        Assert.That(function.Calls, Is.Empty);
    }

    // Base64 comes in blocks of 4 characters: 3,580 is the longest valid value within the 3,583-byte limit.
    [Test]
    public async Task AcceptsAClientContextUpTo3583BytesAndRefusesALongerOneWith400()
    {
        var function = new RecordingFunction("{}");
        Emulator.AddFunction("long-context", function.Handle);
        string longest = ClientContextOfLength(3580);
        using (var response = await Client.SendAsync(Invoke("long-context", clientContext: longest)))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(function.Last.ClientContext, Is.EqualTo(Encoding.UTF8.GetString(Convert.FromBase64String(longest))));

        using var tooLong = await Client.SendAsync(Invoke("long-context", clientContext: ClientContextOfLength(3584)));
        string message = await AssertAwsErrorAsync(tooLong, HttpStatusCode.BadRequest, "InvalidRequestContentException");
        Assert.That(message, Does.Contain("at most 3583 bytes").And.Contain("3584"));
        Assert.That(function.Calls, Has.Count.EqualTo(1), "the function does not run");
    }

    private static string ClientContextOfLength(int length)
    {
        // {"custom":{"k":"xxx..."}} is 19 bytes around the x's; every 3 bytes of JSON are 4 of base64.
        string json = "{\"custom\":{\"k\":\"" + new string('x', length / 4 * 3 - 19) + "\"}}";
        string encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes(json));
        Assert.That(encoded, Has.Length.EqualTo(length));
        return encoded;
    }

    [Test]
    public async Task AnswersAFunctionThatThrowsWith200AndAnUnhandledFunctionError()
    {
        Emulator.AddFunction("throws", (invocation, _) => throw new InvalidOperationException("the order " + invocation.RequestId[..4] + " is gone"));
        using var response = await Client.SendAsync(Invoke("throws", qualifier: "v2"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(response, "X-Amz-Function-Error"), Is.EqualTo("Unhandled"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("v2"));
        Assert.That(Header(response, "x-amzn-ErrorType"), Is.Null, "a function error is not a service error");
        var body = await JsonBodyAsync(response);
        Assert.That(body.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "errorMessage", "errorType", "stackTrace" }));
        Assert.That(body.GetProperty("errorMessage").GetString(), Does.Match("^the order .{4} is gone$"));
        Assert.That(body.GetProperty("errorType").GetString(), Is.EqualTo("InvalidOperationException"));
        Assert.That(body.GetProperty("stackTrace").ValueKind, Is.EqualTo(JsonValueKind.Array));
        Assert.That(body.GetProperty("stackTrace").EnumerateArray().Select(e => e.GetString()), Has.Some.Contains(nameof(AnswersAFunctionThatThrowsWith200AndAnUnhandledFunctionError)));
    }

    [Test]
    public async Task AnswersALambdaHandledErrorExceptionWith200AndAHandledFunctionError()
    {
        Emulator.AddFunction("refuses", (invocation, _) =>
        {
            invocation.Log("refusing a negative amount");
            throw new LambdaHandledErrorException("ValidationError", "amount must be positive");
        });
        using var response = await Client.SendAsync(Invoke("refuses", qualifier: "3", logType: "Tail"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(response, "X-Amz-Function-Error"), Is.EqualTo("Handled"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("3"));
        Assert.That(Header(response, "x-amzn-ErrorType"), Is.Null, "a function error is not a service error");
        Assert.That(Encoding.UTF8.GetString(Convert.FromBase64String(Header(response, "X-Amz-Log-Result")!)), Is.EqualTo("refusing a negative amount\n"));
        var body = await JsonBodyAsync(response);
        Assert.That(body.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "errorMessage", "errorType", "stackTrace" }));
        Assert.That(body.GetProperty("errorMessage").GetString(), Is.EqualTo("amount must be positive"));
        Assert.That(body.GetProperty("errorType").GetString(), Is.EqualTo("ValidationError"));
        Assert.That(body.GetProperty("stackTrace").GetArrayLength(), Is.Zero, "the function returned the error: no emulator frames");
    }

    [Test]
    public void LambdaHandledErrorExceptionRefusesAnEmptyErrorType()
    {
        var e = Assert.Throws<ArgumentException>(() => new LambdaHandledErrorException("", "amount must be positive"));
        Assert.That(e!.ParamName, Is.EqualTo("errorType"));
        Assert.That(e.Message, Does.Contain("must not be empty").And.Contain("such as"));
        Assert.Throws<ArgumentNullException>(() => new LambdaHandledErrorException(null!, "m"));
        Assert.Throws<ArgumentNullException>(() => new LambdaHandledErrorException("T", null!));
    }

    [Test]
    public async Task AnswersAResponseOver6MBAsAFunctionError()
    {
        Emulator.AddFunction("too-big", (_, _) => new ValueTask<byte[]>(JsonString(LambdaEmulator.MaxRequestResponsePayload + 1)));
        using var response = await Client.SendAsync(Invoke("too-big"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(response, "X-Amz-Function-Error"), Is.EqualTo("Unhandled"));
        var body = await JsonBodyAsync(response);
        Assert.That(body.GetProperty("errorType").GetString(), Is.EqualTo("Function.ResponseSizeTooLarge"));
        Assert.That(body.GetProperty("errorMessage").GetString(), Does.Contain("6291456 bytes"));
    }

    [TestCase("{\"unclosed\": 1", TestName = "unclosed object")]
    [TestCase("not json", TestName = "bare words")]
    [TestCase("{} {}", TestName = "two values")]
    public async Task RefusesAPayloadThatIsNotJson(string payload)
    {
        var function = new RecordingFunction();
        Emulator.AddFunction("strict-json", function.Handle);
        using var response = await Client.SendAsync(Invoke("strict-json", payload));
        Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "InvalidRequestContentException"), Does.StartWith("Could not parse request body into json"));
        Assert.That(function.Calls, Is.Empty);
    }

    [Test]
    public async Task AcceptsA6MBPayloadAndRefusesOneByteMoreWith413()
    {
        var function = new RecordingFunction("{}");
        Emulator.AddFunction("large", function.Handle);
        using (var atLimit = await Client.SendAsync(Invoke("large", Encoding.UTF8.GetString(JsonString(LambdaEmulator.MaxRequestResponsePayload)))))
            Assert.That(atLimit.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(function.Last.Payload.Length, Is.EqualTo(6 * 1024 * 1024));

        using var over = await Client.SendAsync(Invoke("large", Encoding.UTF8.GetString(JsonString(LambdaEmulator.MaxRequestResponsePayload + 1))));
        Assert.That(await AssertAwsErrorAsync(over, HttpStatusCode.RequestEntityTooLarge, "RequestTooLargeException"), Does.Contain("6291456 bytes"));
        Assert.That(function.Calls, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task AcceptsA1MBEventAndRefusesOneByteMoreWith413()
    {
        var function = new RecordingFunction("{}");
        Emulator.AddFunction("large-event", function.Handle);
        using (var atLimit = await Client.SendAsync(Invoke("large-event", Encoding.UTF8.GetString(JsonString(LambdaEmulator.MaxEventPayload)), invocationType: "Event")))
            Assert.That(atLimit.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));

        using var over = await Client.SendAsync(Invoke("large-event", Encoding.UTF8.GetString(JsonString(LambdaEmulator.MaxEventPayload + 1)), invocationType: "Event"));
        Assert.That(await AssertAwsErrorAsync(over, HttpStatusCode.RequestEntityTooLarge, "RequestTooLargeException"), Does.Contain("1048576 bytes"));
    }

    [Test]
    public async Task RefusesAChunkedBodyOverTheLimitWith413()
    {
        // No Content-Length: the emulator counts as it reads (once the signature's form, key, scope and time pass).
        using var request = new HttpRequestMessage(HttpMethod.Post, InvokePath("large"))
        {
            Content = new StreamContent(new MemoryStream(JsonString(LambdaEmulator.MaxRequestResponsePayload + 10))),
        };
        request.Headers.TransferEncodingChunked = true;
        using var response = await Client.SendAsync(request);
        await AssertAwsErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "RequestTooLargeException");
    }

    [Test]
    public async Task AnswersAnUnknownFunctionWithTheEchoWhenAsked()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true });
        using var client = SignedClient(emulator);
        using var response = await client.SendAsync(Invoke("arn:aws:lambda:us-east-1:123456789012:function:anything:v1", "{\"x\":true}"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("{\"function\":\"anything\",\"payload\":{\"x\":true}}"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("v1"));
    }

    [Test]
    public async Task ReplacesAFunctionAddedTwice()
    {
        Emulator.AddFunction("replaced", (_, _) => new ValueTask<byte[]>("1"u8.ToArray()));
        Emulator.AddFunction("replaced", (_, _) => new ValueTask<byte[]>("2"u8.ToArray()));
        using var response = await Client.SendAsync(Invoke("replaced"));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("2"));
    }

    // A JSON string of exactly `size` bytes: "aaa...".
    private static byte[] JsonString(int size)
    {
        var bytes = new byte[size];
        bytes.AsSpan().Fill((byte)'a');
        bytes[0] = bytes[^1] = (byte)'"';
        return bytes;
    }
}
