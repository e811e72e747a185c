using System.Net;
using System.Text;
using System.Text.Json;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.LambdaTestSupport;

namespace SigV4Lite.Tests;

/// <summary>One invocation against the emulator: invocation types, log, client context, names, payloads, errors.</summary>
[TestFixture]
public sealed class LambdaInvokeTests : EmulatorFixture
{
    // ---- invocation types ----

    [Test]
    public async Task RequestResponse_ReturnsThePayloadAndHeaders()
    {
        using var client = NewClient(Emulator);
        var response = await client.InvokeAsync(new LambdaRequest("echo", """{"hello": 1}"""));

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.GetPayloadString(), Is.EqualTo("""{"function":"echo","payload":{"hello": 1}}"""));
        Assert.That(response.ExecutedVersion, Is.EqualTo("$LATEST"));
        Assert.That(Guid.TryParse(response.RequestId, out _), Is.True, response.RequestId);
        Assert.That(response.Log, Is.Null);
        Assert.That(response.FunctionError, Is.Null);
        Assert.That(response.FunctionName, Is.EqualTo("echo"));
    }

    [Test]
    public async Task Event_Returns202AndTheFunctionRunsAsynchronously()
    {
        var ran = new TaskCompletionSource<LambdaInvocation>(TaskCreationOptions.RunContinuationsAsynchronously);
        Emulator.AddFunction("queued", (invocation, _) => { ran.TrySetResult(invocation); return ValueTask.FromResult("null"u8.ToArray()); });
        using var client = NewClient(Emulator);

        var response = await client.InvokeAsync(new LambdaRequest("queued", """{"job": 7}""") { InvocationType = LambdaInvocationType.Event });

        Assert.That(response.StatusCode, Is.EqualTo(202));
        Assert.That(response.Payload.Length, Is.Zero);
        var invocation = await ran.Task.WaitAsync(Patience);
        Assert.That(invocation.InvocationType, Is.EqualTo("Event"));
        Assert.That(Encoding.UTF8.GetString(invocation.Payload.Span), Is.EqualTo("""{"job": 7}"""));
    }

    [Test]
    public async Task DryRun_Returns204WithoutRunningTheFunction()
    {
        int runs = 0;
        Emulator.AddFunction("counted", (_, _) => { Interlocked.Increment(ref runs); return ValueTask.FromResult("1"u8.ToArray()); });
        using var client = NewClient(Emulator);

        var response = await client.InvokeAsync(new LambdaRequest("counted", "{}") { InvocationType = LambdaInvocationType.DryRun });

        Assert.That(response.StatusCode, Is.EqualTo(204));
        Assert.That(response.Payload.Length, Is.Zero);
        Assert.That(response.ExecutedVersion, Is.EqualTo("$LATEST"));
        Assert.That(runs, Is.Zero);
    }

    // ---- log tail and client context ----

    [Test]
    public async Task LogTail_IsReturnedDecoded_OnlyWhenAskedFor()
    {
        Emulator.AddFunction("chatty", (invocation, _) =>
        {
            invocation.Log("START é");
            invocation.Log("line two");
            return ValueTask.FromResult("{}"u8.ToArray());
        });
        using var client = NewClient(Emulator);

        var withLog = await client.InvokeAsync(new LambdaRequest("chatty", "{}") { LogType = LambdaLogType.Tail });
        var withoutLog = await client.InvokeAsync(new LambdaRequest("chatty", "{}"));

        Assert.That(withLog.Log, Is.EqualTo("START é\nline two\n"));
        Assert.That(withoutLog.Log, Is.Null);
    }

    [Test]
    public async Task ClientContext_ReachesTheFunction()
    {
        Emulator.AddFunction("context", (invocation, _) => ValueTask.FromResult(Encoding.UTF8.GetBytes(invocation.ClientContext ?? "null")));
        using var client = NewClient(Emulator);
        const string context = """{"custom":{"user":"42","ünïcode":"✓"},"client":{"app_title":"demo"}}""";

        var response = await client.InvokeAsync(new LambdaRequest("context", "{}") { ClientContext = context });

        Assert.That(response.GetPayloadString(), Is.EqualTo(context));
    }

    [Test]
    public void ClientContext_TooLarge_IsRefusedBeforeSending()
    {
        using var client = NewClient(Emulator);
        string context = "{\"custom\":{\"blob\":\"" + new string('x', 2700) + "\"}}"; // 2,700 bytes of JSON: over 3,583 once base64-encoded

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}") { ClientContext = context }));

        Assert.That(e!.Message, Does.Contain("3583").And.Contain("base64"));
        Assert.That(Emulator.Counters.Requests, Is.Zero);
    }

    [Test]
    public async Task ClientContext_AtTheLimit_IsSent()
    {
        using var client = NewClient(Emulator);
        string context = "{\"b\":\"" + new string('x', 3583 / 4 * 3 - 8) + "\"}"; // exactly 3,583 bytes... less the base64 padding
        Assert.That(Convert.ToBase64String(Encoding.UTF8.GetBytes(context)).Length, Is.LessThanOrEqualTo(3583).And.GreaterThan(3570));

        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}") { ClientContext = context });

        Assert.That(response.StatusCode, Is.EqualTo(200));
    }

    [Test]
    public void ClientContext_NotJson_IsRefusedBeforeSending()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}") { ClientContext = "user=42" }));

        Assert.That(e!.Message, Does.Contain("must be JSON"));
        Assert.That(Emulator.Counters.Requests, Is.Zero);
    }

    // ---- function names and qualifiers ----

    [TestCase("my-fn", null, "my-fn", null)]
    [TestCase("my-fn:live", null, "my-fn", "live")]
    [TestCase("my-fn", "$LATEST", "my-fn", "$LATEST")]
    [TestCase("my-fn", "7", "my-fn", "7")]
    [TestCase("my-fn:prod_2", "prod_2", "my-fn", "prod_2")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-fn", null, "my-fn", null)]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-fn:$LATEST", null, "my-fn", "$LATEST")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-fn", "blue-green", "my-fn", "blue-green")]
    [TestCase("123456789012:function:my-fn", null, "my-fn", null)]
    [TestCase("123456789012:function:my-fn:v2", null, "my-fn", "v2")]
    public async Task FunctionNameAndQualifier_RoundTrip(string functionName, string? qualifier, string expectedName, string? expectedQualifier)
    {
        Emulator.AddFunction("my-fn", (invocation, _) =>
            ValueTask.FromResult(JsonSerializer.SerializeToUtf8Bytes(invocation.FunctionName + "|" + invocation.Qualifier, LambdaTestJsonStrings.Default.String)));
        using var client = NewClient(Emulator);

        var response = await client.InvokeAsync(new LambdaRequest(functionName, "{}") { Qualifier = qualifier });

        Assert.That(response.DeserializePayload(LambdaTestJsonStrings.Default.String), Is.EqualTo(expectedName + "|" + expectedQualifier));
        Assert.That(response.ExecutedVersion, Is.EqualTo(expectedQualifier ?? "$LATEST"));
        Assert.That(Emulator.Counters.SignatureFailures, Is.Zero);
    }

    [Test]
    public async Task FunctionName_IsOnePercentEncodedPathSegment_OnTheWire()
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "{}"));
        using var client = StubHandler.Client(stub);

        await client.InvokeAsync(new LambdaRequest("arn:aws:lambda:us-east-1:123456789012:function:my-fn:$LATEST", "{}") { Qualifier = "$LATEST" });

        Assert.That(stub.Uris.Single(), Is.EqualTo(
            "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn%3A%24LATEST/invocations?Qualifier=%24LATEST"));
    }

    // ---- payload forms ----

    [Test]
    public async Task JsonTypeInfoPayload_IsSerializedAndTheAnswerDeserialized()
    {
        using var client = NewClient(Emulator);

        var response = await client.InvokeAsync(LambdaRequest.FromJson("echo", new HelloEvent(42), LambdaTestJson.Default.HelloEvent));
        var answer = response.DeserializePayload(LambdaTestJson.Default.EchoAnswer);

        Assert.That(answer, Is.EqualTo(new EchoAnswer("echo", new HelloEvent(42))));
    }

    [Test]
    public async Task BytePayload_IsSentAsIs()
    {
        using var client = NewClient(Emulator);
        var payload = Utf8("""{"n":[1,2,3]}""");

        var response = await client.InvokeAsync(new LambdaRequest("echo", payload.AsMemory()));

        Assert.That(response.GetPayloadString(), Is.EqualTo("""{"function":"echo","payload":{"n":[1,2,3]}}"""));
    }

    // ---- function errors ----

    [Test]
    public void UnhandledFunctionError_Throws_WithTheFunctionsErrorAndIsNotRetried()
    {
        Emulator.AddFunction("crash", (invocation, _) =>
        {
            invocation.Log("about to fail");
            throw new InvalidOperationException("boom: the input had no id");
        });
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var e = Assert.ThrowsAsync<LambdaFunctionException>(() => client.InvokeAsync(new LambdaRequest("crash", "{}") { LogType = LambdaLogType.Tail }));

        Assert.That(e!.FunctionError, Is.EqualTo("Unhandled"));
        Assert.That(e.ErrorType, Is.EqualTo("InvalidOperationException"));
        Assert.That(e.ErrorMessage, Is.EqualTo("boom: the input had no id"));
        Assert.That(e.FunctionName, Is.EqualTo("crash"));
        Assert.That(Guid.TryParse(e.RequestId, out _), Is.True);
        Assert.That(e.Response.Log, Does.Contain("about to fail"));
        Assert.That(e.Message, Does.Contain("'crash'").And.Contain("Unhandled").And.Contain("InvalidOperationException").And.Contain("boom"));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1), "a function error is never retried");
        Assert.That(delays.Delays, Is.Empty);
    }

    [Test]
    public async Task FunctionError_WithThrowingOff_IsAResponseCarryingTheErrorPayload()
    {
        Emulator.AddFunction("crash", (_, _) => throw new ArgumentException("bad input"));
        using var client = NewClient(Emulator);

        var response = await client.InvokeAsync(new LambdaRequest("crash", "{}") { ThrowOnFunctionError = false });

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.FunctionError, Is.EqualTo("Unhandled"));
        using var error = JsonDocument.Parse(response.Payload);
        Assert.That(error.RootElement.GetProperty("errorMessage").GetString(), Is.EqualTo("bad input"));
        Assert.That(error.RootElement.GetProperty("errorType").GetString(), Is.EqualTo("ArgumentException"));
    }

    // A Handled error is one the function returned through its runtime; the emulator's function answers one by
    // throwing LambdaHandledErrorException.
    [Test]
    public void HandledFunctionError_Throws_WithTheFunctionsError()
    {
        string? requestId = null;
        Emulator.AddFunction("pay", (invocation, _) =>
        {
            requestId = invocation.RequestId;
            throw new LambdaHandledErrorException("ValueError", "amount must be positive");
        });
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays, maxAttempts: 3);

        var e = Assert.ThrowsAsync<LambdaFunctionException>(() => client.InvokeAsync(new LambdaRequest("pay:3", "{}")));

        Assert.That(e!.FunctionError, Is.EqualTo("Handled"));
        Assert.That(e.ErrorType, Is.EqualTo("ValueError"));
        Assert.That(e.ErrorMessage, Is.EqualTo("amount must be positive"));
        Assert.That(e.RequestId, Is.EqualTo(requestId).And.Not.Null);
        Assert.That(e.Response.ExecutedVersion, Is.EqualTo("3"));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1), "never retried");
        Assert.That(delays.Delays, Is.Empty);
    }

    [Test]
    public void FunctionError_WhosePayloadIsNotAnErrorObject_StillThrowsWithTheText()
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "Task timed out after 3.00 seconds", ("X-Amz-Function-Error", "Unhandled")));
        using var client = StubHandler.Client(stub);

        var e = Assert.ThrowsAsync<LambdaFunctionException>(() => client.InvokeAsync(new LambdaRequest("slow", "{}")));

        Assert.That(e!.ErrorType, Is.EqualTo("UnknownError"));
        Assert.That(e.ErrorMessage, Is.EqualTo("Task timed out after 3.00 seconds"));
    }

    // ---- service errors ----

    // Each error Lambda's Invoke answers, injected by the emulator: type, message, status and request id come through,
    // and no 4xx other than throttling is retried (the client allows 3 attempts here).
    [TestCase(400, "InvalidParameterValueException")]
    [TestCase(400, "InvalidRequestContentException")]
    [TestCase(400, "ModeNotSupportedException")]
    [TestCase(400, "RecursiveInvocationException")]
    [TestCase(400, "SnapStartException")]
    [TestCase(402, "ServiceQuotaExceededException")]
    [TestCase(403, "EFSMountFailureException")]
    [TestCase(404, "ResourceNotFoundException")]
    [TestCase(408, "SnapStartTimeoutException")]
    [TestCase(408, "EFSMountTimeoutException")]
    [TestCase(409, "ResourceConflictException")]
    [TestCase(409, "SnapStartNotReadyException")]
    [TestCase(410, "EFSIOException")]
    [TestCase(413, "RequestTooLargeException")]
    [TestCase(415, "UnsupportedMediaTypeException")]
    public void ClientErrors_AreTypedAndNotRetried(int status, string errorType)
    {
        Emulator.Faults.FailNext(1, status, errorType);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays, maxAttempts: 3);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        AssertServiceError(e!, status, errorType);
        Assert.That(e!.Reason, Is.Null);
        Assert.That(e.IsThrottling, Is.False);
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(delays.Delays, Is.Empty);
    }

    [TestCase(500, "ServiceException")]
    [TestCase(502, "ResourceNotReadyException")]
    [TestCase(502, "EC2UnexpectedException")]
    [TestCase(502, "ENILimitReachedException")]
    [TestCase(502, "KMSAccessDeniedException")]
    [TestCase(502, "InvalidRuntimeException")]
    [TestCase(503, "ServiceUnavailableException")]
    [TestCase(504, "GatewayTimeoutException")]
    public void ServerErrors_AreTyped(int status, string errorType)
    {
        Emulator.Faults.FailNext(1, status, errorType);
        using var client = NewClient(Emulator, maxAttempts: 1);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        AssertServiceError(e!, status, errorType);
        Assert.That(e!.Attempts, Is.EqualTo(1));
    }

    [Test]
    public void Throttling_CarriesReasonAndRetryAfter()
    {
        Emulator.Faults.ThrottleNext(1, "CallerRateLimitExceeded", TimeSpan.FromSeconds(3));
        using var client = NewClient(Emulator, maxAttempts: 1);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        AssertServiceError(e!, 429, "TooManyRequestsException");
        Assert.That(e!.Reason, Is.EqualTo("CallerRateLimitExceeded"));
        Assert.That(e.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(3)));
        Assert.That(e.IsThrottling, Is.True);
        Assert.That(e.Message, Does.Contain("CallerRateLimitExceeded"));
    }

    // Retry-After as an HTTP date is measured from the client's clock, not the machine's.
    [Test]
    public void RetryAfterAsADate_IsMeasuredOnTheClientsClock()
    {
        var clock = new SteppingClock(new DateTimeOffset(2030, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.TooManyRequests, """{"message":"Rate Exceeded.","Reason":"CallerRateLimitExceeded"}""",
            ("x-amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", "Tue, 01 Jan 2030 12:00:30 GMT")));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = stub, MaxAttempts = 1, Clock = clock,
        });

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That(e!.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(30)));
    }

    // Once the client has learnt that the server's clock runs 10 minutes ahead (a skew error, then a success), a
    // Retry-After date 30 s after the server's now means 30 s, not 10 min 30 s.
    [Test]
    public async Task RetryAfterAsADate_IsMeasuredOnTheServersClockAsTheClientLearntIt()
    {
        var clock = new SteppingClock(new DateTimeOffset(2030, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var skew = TimeSpan.FromMinutes(10);
        int answers = 0;
        var stub = new StubHandler(_ =>
        {
            var serverNow = clock.GetUtcNow() + skew;
            var response = Interlocked.Increment(ref answers) switch
            {
                1 => StubHandler.Json(HttpStatusCode.Forbidden, """{"message":"Signature expired: 20300101T120000Z is now earlier than 20300101T120500Z (20300101T121000Z - 5 min.)"}""",
                    ("x-amzn-ErrorType", "InvalidSignatureException")),
                2 => StubHandler.Json(HttpStatusCode.OK, "{}"),
                _ => StubHandler.Json(HttpStatusCode.TooManyRequests, """{"message":"Rate Exceeded."}""",
                    ("x-amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", (serverNow + TimeSpan.FromSeconds(30)).ToString("r"))),
            };
            response.Headers.Date = serverNow;
            return response;
        });
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = stub, MaxAttempts = 1, Clock = clock,
        });

        await client.InvokeAsync(new LambdaRequest("f", "{}"));
        Assert.That(client.Pipeline.Retry.ClockOffset, Is.EqualTo(skew));
        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That(e!.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(30)));
    }

    // An error body that is not JSON (a proxy's HTML page, say) is quoted in the message, clipped to 500 characters;
    // with no code in it, the error is named from the status.
    [Test]
    public void ErrorBodyThatIsNotJson_IsQuotedClipped()
    {
        string page = "<html>" + new string('x', 2000) + "</html>";
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.BadGateway, page));
        using var client = StubHandler.Client(stub);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That(e!.ErrorCode, Is.EqualTo("BadGateway"));
        Assert.That(e.ErrorMessage, Is.EqualTo(page[..500] + "..."));
    }

    // Lambda's error bodies: the message in "message" or "Message", the code in the header or in "__type" (after '#') or
    // "code"; Lambda's "Type" (User or Server) is the fault's side, not a code (without one, the status names the error).
    [TestCase("""{"Type":"User","message":"Function not found"}""", null, "BadRequest", "Function not found")]
    [TestCase("""{"Type":"User","message":"Function not found"}""", "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.lambda/", "ResourceNotFoundException", "Function not found")]
    [TestCase("""{"__type":"com.amazonaws.lambda#ServiceException","Message":"Internal"}""", null, "ServiceException", "Internal")]
    [TestCase("""{"code":"KMSAccessDeniedException","message":"denied","nested":{"message":"no"}}""", null, "KMSAccessDeniedException", "denied")]
    public void ErrorBodies_GiveTypeAndMessage(string body, string? header, string type, string message)
    {
        var stub = new StubHandler(_ => header is null
            ? StubHandler.Json(HttpStatusCode.BadRequest, body)
            : StubHandler.Json(HttpStatusCode.BadRequest, body, ("x-amzn-ErrorType", header)));
        using var client = StubHandler.Client(stub);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That((e!.ErrorCode, e.ErrorMessage), Is.EqualTo((type, message)));
    }

    [Test]
    public void ReservedConcurrency_ThrottlesWithItsReason()
    {
        Emulator.AddFunction("reserved", LambdaEmulator.Echo, concurrencyLimit: 0);
        using var client = NewClient(Emulator, maxAttempts: 1);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("reserved", "{}")));

        AssertServiceError(e!, 429, "TooManyRequestsException");
        Assert.That(e!.Reason, Is.EqualTo("ReservedFunctionConcurrentInvocationLimitExceeded"));
    }

    [Test]
    public void UnknownFunction_IsResourceNotFound()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("no-such-function", "{}")));

        AssertServiceError(e!, 404, "ResourceNotFoundException");
        Assert.That(e!.ErrorMessage, Does.Contain("function:no-such-function"));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
    }

    [Test]
    public void PayloadThatIsNotJson_IsInvalidRequestContent()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "not json")));

        AssertServiceError(e!, 400, "InvalidRequestContentException");
    }

    [Test]
    public void EventPayloadOverOneMegabyte_IsRequestTooLarge()
    {
        using var client = NewClient(Emulator);
        string payload = "\"" + new string('x', 1024 * 1024) + "\"";

        var e = Assert.ThrowsAsync<AwsServiceException>(() =>
            client.InvokeAsync(new LambdaRequest("echo", payload) { InvocationType = LambdaInvocationType.Event }));

        AssertServiceError(e!, 413, "RequestTooLargeException");
    }

    [Test]
    public void WrongSecret_IsInvalidSignature_WithoutLeakingTheSessionToken()
    {
        const string token = "FQoGZXIvYXdzEXAMPLETOKENthatmustneverappear0123456789";
        using var client = NewClient(Emulator, credentials: new AwsCredentials("AKIDEXAMPLE", "wrong-secret-wrong-secret-wrong-secret00", token));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        AssertServiceError(e!, 403, "InvalidSignatureException");
        Assert.That(e!.Message, Does.Not.Contain(token).And.Not.Contain("wrong-secret"));
        Assert.That(e.Message, Does.Contain("(session token)"), "the server's message echoed the canonical request, token redacted");
        Assert.That(e.ToString(), Does.Not.Contain(token));
    }

    [Test]
    public void UnknownAccessKey_IsUnrecognizedClient()
    {
        using var client = NewClient(Emulator, credentials: new AwsCredentials("AKIDUNKNOWN", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        AssertServiceError(e!, 403, "UnrecognizedClientException");
        Assert.That(e!.Message, Does.Not.Contain("wJalrXUtnFEMI"));
    }

    // Error shapes other services and proxies send: the code from x-amzn-ErrorType (":suffix" stripped), else from
    // __type ("prefix#" stripped) or code, else from the status (409: Conflict); the message from "message" or "Message".
    [TestCase("ThrottlingException:http://internal.amazon.com/coral/com.amazonaws.lambda/", """{"message":"slow down"}""", "ThrottlingException", "slow down")]
    [TestCase(null, """{"__type":"com.amazonaws.lambda#ResourceConflictException","Message":"busy"}""", "ResourceConflictException", "busy")]
    [TestCase(null, """{"__type":"ResourceConflictException:http://internal.amazon.com/","message":"busy"}""", "ResourceConflictException", "busy")]
    [TestCase(null, """{"code":"KMSDisabledException","message":"key off"}""", "KMSDisabledException", "key off")]
    [TestCase(null, """{"Type":"User","message":"who knows"}""", "Conflict", "who knows")]
    [TestCase(null, "<html>Bad Gateway</html>", "Conflict", "<html>Bad Gateway</html>")]
    public void ErrorBodies_OfEveryShape_AreParsed(string? header, string body, string expectedType, string expectedMessage)
    {
        var stub = new StubHandler(_ => header is null
            ? StubHandler.Json(HttpStatusCode.Conflict, body, ("x-amzn-RequestId", "rid-9"))
            : StubHandler.Json(HttpStatusCode.Conflict, body, ("x-amzn-RequestId", "rid-9"), ("x-amzn-ErrorType", header)));
        using var client = StubHandler.Client(stub);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That(e!.ErrorCode, Is.EqualTo(expectedType));
        Assert.That(e.ErrorMessage, Is.EqualTo(expectedMessage));
        Assert.That(e.RequestId, Is.EqualTo("rid-9"));
        Assert.That(e.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
    }

    // ---- timeouts and cancellation ----

    [Test]
    public void Timeout_IsAnAwsTimeoutException()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.FromSeconds(20));
        using var client = NewClient(Emulator, maxAttempts: 1);

        var e = Assert.ThrowsAsync<AwsTimeoutException>(() =>
            client.InvokeAsync(new LambdaRequest("echo", "{}") { Timeout = TimeSpan.FromMilliseconds(300) }));

        Assert.That(e, Is.InstanceOf<AwsException>());
        Assert.That(e!.Timeout, Is.EqualTo(TimeSpan.FromMilliseconds(300)));
        Assert.That((e.ServiceName, e.OperationName, e.Attempts), Is.EqualTo(("Lambda", "Invoke", 1)));
        Assert.That(e.Message, Does.Contain("Lambda Invoke timed out").And.Contain("set the request's or the client's Timeout"));
    }

    [Test]
    public async Task AGivenHandlersRedirectsAreTurnedOff_ACrossHostRedirectReachesNoOne()
    {
        await using var elsewhere = new FakeHttpServer(_ => Reply.Json("{}"));
        await using var redirecting = new FakeHttpServer(_ => new Reply(307, "") { Headers = [new("Location", new Uri(elsewhere.Url, "/2015-03-31/functions/echo/invocations").ToString())] });
        using var handler = new SocketsHttpHandler(); // follows redirects by default
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = redirecting.Url, Region = "us-east-1", MaxAttempts = 1,
            Credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSION-TOKEN"),
            HttpHandler = handler,
        });

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")))!;

        Assert.That((int)e.StatusCode, Is.EqualTo(307));
        Assert.That(handler.AllowAutoRedirect, Is.False);
        Assert.That(elsewhere.Requests, Is.Empty, "the token never reached the other host");
    }

    [Test]
    public async Task AGivenHandlerThatFollowsRedirectsAndHasSentIsRefused()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var handler = new SocketsHttpHandler();
        using (var used = new HttpClient(handler, disposeHandler: false)) await used.GetAsync(server.Url);

        var e = Assert.Throws<ArgumentException>(() => new LambdaClient(new AwsClientOptions
        {
            Endpoint = server.Url, Region = "us-east-1", Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = handler,
        }))!;

        Assert.That(e.Message, Does.Contain("follows redirects").And.Contain("AllowAutoRedirect = false"));
    }

    [Test]
    public async Task Cancellation_IsAnOperationCanceledException_AndIsNotRetried()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.FromSeconds(20));
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        var started = DateTime.UtcNow;
        Assert.That(async () => await client.InvokeAsync(new LambdaRequest("echo", "{}"), cancel.Token), Throws.InstanceOf<OperationCanceledException>());

        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(delays.Delays, Is.Empty);
        await EventuallyAsync(() => Emulator.Counters.InFlight == 0, "the emulator saw the request end");
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
    }

    // ---- bad input ----

    [Test]
    public void EmptyFunctionName_IsRefused()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(new LambdaRequest("", "{}")));

        Assert.That(e!.ParamName, Is.EqualTo("request"));
        Assert.That(e.Message, Does.Contain("function name '' is not one Lambda takes: it is empty").And.Contain("arn:aws:lambda"));
    }

    [Test]
    public void EmptyQualifier_IsRefused()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}") { Qualifier = "" }));

        Assert.That(e!.Message, Does.Contain("qualifier '' is not a version or alias").And.Contain("$LATEST"));
    }

    [Test]
    public void LogTailOrClientContext_WithAnEventInvocation_AreRefused()
    {
        using var client = NewClient(Emulator);

        var log = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(
            new LambdaRequest("echo", "{}") { InvocationType = LambdaInvocationType.Event, LogType = LambdaLogType.Tail }));
        var context = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(
            new LambdaRequest("echo", "{}") { InvocationType = LambdaInvocationType.Event, ClientContext = "{}" }));

        Assert.That(log!.Message, Does.Contain("synchronous invocations only"));
        Assert.That(context!.Message, Does.Contain("synchronous invocations only"));
        Assert.That(Emulator.Counters.Requests, Is.Zero);
    }

    [Test]
    public void BadClientOptions_AreRefused()
    {
        var attempts = Assert.Throws<ArgumentOutOfRangeException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1", MaxAttempts = 0 }));
        var region = Assert.Throws<ArgumentException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1/evil.example" }));
        var timeout = Assert.Throws<ArgumentOutOfRangeException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1", Timeout = TimeSpan.Zero }));

        Assert.That(attempts!.Message, Does.Contain("MaxAttempts must be at least 1"));
        Assert.That(region!.Message, Does.Contain("not a region name").And.Contain("us-east-1"));
        Assert.That(timeout!.Message, Does.Contain("must be positive"));
    }

    [Test]
    public void NonPositiveCallTimeout_IsRefused()
    {
        using var client = NewClient(Emulator);

        var e = Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}") { Timeout = TimeSpan.FromSeconds(-1) }));

        Assert.That(e!.Message, Does.Contain("must be positive or Timeout.InfiniteTimeSpan"));
        Assert.That(Emulator.Counters.Requests, Is.Zero);
    }

    // A timer takes at most about 49.7 days (uint.MaxValue - 1 milliseconds): a longer timeout means no limit, on the
    // system clock (whose timeout sources are pooled) and on any other.
    [TestCase(false)]
    [TestCase(true)]
    public async Task TimeoutLongerThanATimerTakes_MeansNoLimit(bool otherClock)
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "{}"));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = stub,
            Timeout = TimeSpan.FromDays(60), Clock = otherClock ? new OffsetClock(TimeSpan.Zero) : TimeProvider.System,
        });

        var withClientTimeout = await client.InvokeAsync(new LambdaRequest("f", "{}"));
        var withCallTimeout = await client.InvokeAsync(new LambdaRequest("f", "{}") { Timeout = TimeSpan.MaxValue });

        Assert.That((withClientTimeout.StatusCode, withCallTimeout.StatusCode), Is.EqualTo((200, 200)));
        Assert.That(stub.Uris, Has.Count.EqualTo(2));
    }

    // ---- transport choices ----

    // An answer without Content-Length (chunked) is read whole, across the reader's buffer growth.
    [Test]
    public async Task AnswerWithoutContentLength_IsReadWhole()
    {
        var payload = Encoding.UTF8.GetBytes("\"" + new string('z', 100_000) + "\"");
        var stub = new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new UnseekableStream(payload)) });
        using var client = StubHandler.Client(stub);

        var response = await client.InvokeAsync(new LambdaRequest("big", "{}"));

        Assert.That(response.Payload.ToArray(), Is.EqualTo(payload));
    }

    private sealed class UnseekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }


    // The shared HttpClient follows no redirect: HttpClient would send the signed headers, the session token among
    // them, to wherever the Location points (it drops only Authorization).
    [Test]
    public async Task SharedHttpClient_FollowsNoRedirect()
    {
        await using var elsewhere = new FakeHttpServer(_ => Reply.Json("{}"));
        await using var redirecting = new FakeHttpServer(_ => new Reply(307) { Headers = [new("Location", elsewhere.Url + "elsewhere")] });
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = redirecting.Url, Region = "us-east-1", MaxAttempts = 1,
            Credentials = new AwsCredentials("ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-secret"),
        });

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")));

        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.TemporaryRedirect));
        Assert.That(redirecting.Requests, Has.Count.EqualTo(1));
        Assert.That(elsewhere.Requests.Select(r => r.Header("X-Amz-Security-Token")), Is.Empty, "the redirect was followed");
    }

    [Test]
    public async Task UsersHandler_IsUsed_AndNotDisposed()
    {
        var counting = new CountingHandler(new SocketsHttpHandler());
        using (var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = Emulator.Endpoint, Region = "us-east-1", Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = counting,
        }))
        {
            await client.InvokeAsync(new LambdaRequest("echo", "{}"));
        }
        using var again = new HttpClient(counting, disposeHandler: true);
        var answer = await again.GetAsync(Emulator.Endpoint);

        Assert.That(counting.Count, Is.EqualTo(2), "the client sent through the handler, which still works after the client is disposed");
        Assert.That((int)answer.StatusCode, Is.GreaterThanOrEqualTo(400));
    }

    private sealed class CountingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        public int Count;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Count);
            return base.SendAsync(request, cancellationToken);
        }
    }

    // The exception names the service and operation, not the function (the caller has the request).
    private static void AssertServiceError(AwsServiceException e, int status, string errorCode)
    {
        Assert.That(e.StatusCode, Is.EqualTo((HttpStatusCode)status));
        Assert.That(e.ErrorCode, Is.EqualTo(errorCode));
        Assert.That(e.ErrorType, Is.EqualTo(status >= 500 ? AwsErrorType.Receiver : AwsErrorType.Sender));
        Assert.That(e.ErrorMessage, Is.Not.Empty);
        Assert.That(Guid.TryParse(e.RequestId, out _), Is.True, $"request id '{e.RequestId}'");
        Assert.That((e.ServiceName, e.OperationName), Is.EqualTo(("Lambda", "Invoke")));
        Assert.That(e.Message, Does.Contain($"Lambda Invoke answered {status} {errorCode}").And.Contain(e.RequestId!));
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class LambdaTestJsonStrings : System.Text.Json.Serialization.JsonSerializerContext;
