using System.Net;
using System.Text;
using System.Text.Json;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>The emulator's InvokeWithResponseStream, read with a signed HttpClient and the library's event-stream
/// reader, as an AWS client would.</summary>
public class EmulatorStreamingTests : SignedEmulatorFixture
{
    [SetUp]
    public void ClearFaultsAndCounters()
    {
        Emulator.Faults.Clear();
        Emulator.Counters.Reset();
    }

    [Test]
    public async Task ChunksArriveAsTheFunctionWritesThem()
    {
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Emulator.AddStreamingFunction("ticker", async (invocation, response, cancellationToken) =>
        {
            await response.WriteAsync("first ", cancellationToken);
            await second.Task.WaitAsync(cancellationToken);
            await response.WriteAsync("second", cancellationToken);
        });

        using var response = await SendAsync(InvokeWithResponseStream("ticker"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/vnd.amazon.eventstream"));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("$LATEST"));
        Assert.That(Guid.TryParse(Header(response, "x-amzn-RequestId"), out _), Is.True);
        await using var reader = new EventStreamReader(await response.Content.ReadAsStreamAsync());

        var first = await ReadAsync(reader);
        Assert.That(second.Task.IsCompleted, Is.False, "the first chunk came while the function was still running");
        AssertChunk(first, "first ");
        second.SetResult();
        AssertChunk(await ReadAsync(reader), "second");
        var complete = await ReadAsync(reader);
        AssertInvokeComplete(complete, "{}");
        Assert.That(await reader.ReadAsync(), Is.Null, "InvokeComplete is the last event");
    }

    [TestCase("streamer", null)]
    [TestCase("streamer:v2", "v2")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:streamer:prod", "prod")]
    [TestCase("123456789012:function:streamer", null)]
    public async Task AcceptsEveryFunctionNameForm(string functionName, string? qualifier)
    {
        var seen = new List<LambdaInvocation>();
        Emulator.AddStreamingFunction("streamer", (invocation, response, cancellationToken) =>
        {
            lock (seen) seen.Add(invocation);
            return response.WriteAsync(invocation.Payload, cancellationToken);
        });
        using var response = await SendAsync(InvokeWithResponseStream(functionName, "{\"n\":1}"));
        var messages = await ReadAllAsync(response);
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo(qualifier ?? "$LATEST"));
        Assert.That(messages, Has.Count.EqualTo(2));
        AssertChunk(messages[0], "{\"n\":1}");
        Assert.That(seen.Single().FunctionName, Is.EqualTo("streamer"));
        Assert.That(seen.Single().Qualifier, Is.EqualTo(qualifier));
    }

    [Test]
    public async Task QualifierInTheQueryAndClientContextReachTheFunction()
    {
        LambdaInvocation? seen = null;
        Emulator.AddStreamingFunction("context-stream", (invocation, response, cancellationToken) =>
        {
            seen = invocation;
            return ValueTask.CompletedTask;
        });
        string context = """{"custom":{"a":1}}""";
        using var response = await SendAsync(InvokeWithResponseStream("context-stream", qualifier: "7", clientContext: Convert.ToBase64String(Encoding.UTF8.GetBytes(context))));
        var messages = await ReadAllAsync(response);
        Assert.That(messages, Has.Count.EqualTo(1), "no chunk, only InvokeComplete");
        Assert.That((seen!.Qualifier, seen.ClientContext), Is.EqualTo(("7", context)));
        Assert.That(Header(response, "X-Amz-Executed-Version"), Is.EqualTo("7"));
    }

    [Test]
    public async Task LogTailIsInInvokeCompleteWhenAsked()
    {
        Emulator.AddStreamingFunction("logger", async (invocation, response, cancellationToken) =>
        {
            invocation.Log("streaming héllo");
            await response.WriteAsync("x", cancellationToken);
        });
        using (var tail = await SendAsync(InvokeWithResponseStream("logger", logType: "Tail")))
        {
            var complete = (await ReadAllAsync(tail))[^1];
            using var json = JsonDocument.Parse(complete.Payload);
            string log = Encoding.UTF8.GetString(Convert.FromBase64String(json.RootElement.GetProperty("LogResult").GetString()!));
            Assert.That(log, Is.EqualTo("streaming héllo\n"));
            Assert.That(Header(tail, "X-Amz-Log-Result"), Is.Null, "the log travels in the stream, not in a header");
        }
        using var none = await SendAsync(InvokeWithResponseStream("logger"));
        AssertInvokeComplete((await ReadAllAsync(none))[^1], "{}");
    }

    [Test]
    public async Task FunctionFailingMidStreamEndsWithInvokeCompleteErrorCode()
    {
        Emulator.AddStreamingFunction("breaks", async (invocation, response, cancellationToken) =>
        {
            await response.WriteAsync("partial", cancellationToken);
            throw new InvalidOperationException("disk full");
        });
        Emulator.AddStreamingFunction("refuses", async (invocation, response, cancellationToken) =>
        {
            await response.WriteAsync("a", cancellationToken);
            throw new LambdaHandledErrorException("ValidationError", "amount must be positive");
        });
        using (var response = await SendAsync(InvokeWithResponseStream("breaks")))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the status went out before the failure");
            var messages = await ReadAllAsync(response);
            AssertChunk(messages[0], "partial");
            AssertInvokeComplete(messages[1], """{"ErrorCode":"InvalidOperationException","ErrorDetails":"disk full"}""");
        }
        using (var response = await SendAsync(InvokeWithResponseStream("refuses", logType: "Tail")))
        {
            var complete = (await ReadAllAsync(response))[^1];
            using var json = JsonDocument.Parse(complete.Payload);
            Assert.That(json.RootElement.GetProperty("ErrorCode").GetString(), Is.EqualTo("ValidationError"));
            Assert.That(json.RootElement.GetProperty("ErrorDetails").GetString(), Is.EqualTo("amount must be positive"));
            Assert.That(json.RootElement.TryGetProperty("LogResult", out _), Is.True);
        }
    }

    [Test]
    public async Task BufferedFunctionStreamsItsAnswerAsOneChunk()
    {
        Emulator.AddFunction("plain", LambdaEmulator.Echo);
        using var response = await SendAsync(InvokeWithResponseStream("plain", "[1,2]"));
        var messages = await ReadAllAsync(response);
        Assert.That(messages, Has.Count.EqualTo(2));
        AssertChunk(messages[0], """{"function":"plain","payload":[1,2]}""");
        AssertInvokeComplete(messages[1], "{}");
    }

    [Test]
    public async Task InvokeGathersAStreamingFunctionsChunks()
    {
        Emulator.AddStreamingFunction("gathered", async (invocation, response, cancellationToken) =>
        {
            await response.WriteAsync("[1,", cancellationToken);
            await response.WriteAsync("2]", cancellationToken);
        });
        Emulator.AddStreamingFunction("gathered-fails", async (invocation, response, cancellationToken) =>
        {
            await response.WriteAsync("[1,", cancellationToken);
            throw new TimeoutException("too slow");
        });
        using (var response = await Client.SendAsync(Invoke("gathered")))
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("[1,2]"));
        using var failed = await Client.SendAsync(Invoke("gathered-fails"));
        Assert.That(Header(failed, "X-Amz-Function-Error"), Is.EqualTo("Unhandled"));
        Assert.That((await JsonBodyAsync(failed)).GetProperty("errorType").GetString(), Is.EqualTo("TimeoutException"));
    }

    [Test]
    public async Task DryRunAnswers204WithoutRunningTheFunction()
    {
        int runs = 0;
        Emulator.AddStreamingFunction("dry", (invocation, response, cancellationToken) =>
        {
            Interlocked.Increment(ref runs);
            return ValueTask.CompletedTask;
        });
        using var response = await SendAsync(InvokeWithResponseStream("dry", invocationType: "DryRun"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That(runs, Is.Zero);
    }

    [Test]
    public async Task EventInvocationIsNotAStreamingInvocationType()
    {
        using var response = await SendAsync(InvokeWithResponseStream("echo", invocationType: "Event"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.BadRequest, "ValidationException");
        Assert.That(message, Does.Contain("'Event' at 'invocationType'").And.Contain("[RequestResponse, DryRun]"));
    }

    [Test]
    public async Task UnsignedOrWronglySignedStreamsAreRefused()
    {
        using var unsigned = UnsignedClient(Emulator);
        using (var response = await unsigned.SendAsync(InvokeWithResponseStream("echo")))
            await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "MissingAuthenticationTokenException", "Message");
        using var wrongSecret = SignedClient(Emulator, new AwsCredentials("AKIDEXAMPLE", "not-the-secret"));
        using (var response = await wrongSecret.SendAsync(InvokeWithResponseStream("echo")))
            await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", "Message");
        Assert.That(Emulator.Counters.SignatureFailures, Is.EqualTo(2));
    }

    [Test]
    public async Task UnknownFunctionAndConcurrencyLimitAreAnsweredAsForInvoke()
    {
        using (var response = await SendAsync(InvokeWithResponseStream("nobody-here")))
            Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.NotFound, "ResourceNotFoundException"), Does.Contain("function:nobody-here"));
        Emulator.AddStreamingFunction("reserved", (invocation, response, cancellationToken) => ValueTask.CompletedTask, concurrencyLimit: 0);
        using var throttled = await SendAsync(InvokeWithResponseStream("reserved"));
        await AssertAwsErrorAsync(throttled, HttpStatusCode.TooManyRequests, "TooManyRequestsException",
            reason: "ReservedFunctionConcurrentInvocationLimitExceeded");
    }

    [Test]
    public async Task OtherPathsNameBothOperations()
    {
        using var response = await Client.PostAsync("2021-11-15/functions/echo/other", new ByteArrayContent([]));
        Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.NotFound, "UnknownOperationException"),
            Does.Contain("/2021-11-15/functions/{FunctionName}/response-streaming-invocations"));
    }

    [Test]
    public async Task TruncatedStreamEndsInTheMiddleOfInvokeComplete()
    {
        Emulator.AddStreamingFunction("cut", (invocation, response, cancellationToken) => response.WriteAsync("whole chunk", cancellationToken));
        Emulator.Faults.TruncateNext(1);
        using var response = await SendAsync(InvokeWithResponseStream("cut"));
        await using var reader = new EventStreamReader(await response.Content.ReadAsStreamAsync());
        AssertChunk(await ReadAsync(reader), "whole chunk");
        var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync());
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.Truncated));
    }

    [Test]
    public async Task CallerGivingUpClosesTheStreamAndCancelsTheFunction()
    {
        var function = new WaitingStreamFunction("tick");
        Emulator.AddStreamingFunction("endless", function.Handle);
        using var cancel = new CancellationTokenSource();
        using var response = await SendAsync(InvokeWithResponseStream("endless"), cancel.Token);
        await using var reader = new EventStreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
        AssertChunk(await ReadAsync(reader), "tick");
        var waiting = reader.ReadAsync(cancel.Token).AsTask();
        await Task.Delay(50);
        Assert.That(waiting.IsCompleted, Is.False, "the function sends nothing more");
        cancel.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await waiting);
        await function.Cancelled.WaitAsync(Patience);
        await LambdaTestSupport.EventuallyAsync(() => Emulator.Counters.Disconnects == 1, "the emulator counts the disconnect");
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        using (request)
            return await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    private static async Task<EventStreamMessage> ReadAsync(EventStreamReader reader) =>
        await reader.ReadAsync().AsTask().WaitAsync(Patience) ?? throw new AssertionException("the stream ended early");

    private static async Task<List<EventStreamMessage>> ReadAllAsync(HttpResponseMessage response)
    {
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await using var reader = new EventStreamReader(await response.Content.ReadAsStreamAsync());
        var messages = new List<EventStreamMessage>();
        await foreach (var message in reader.ReadAllAsync()) messages.Add(message);
        return messages;
    }

    internal static void AssertChunk(EventStreamMessage message, string payload)
    {
        Assert.That((message.MessageType, message.EventType, message.ContentType), Is.EqualTo(("event", "PayloadChunk", "application/octet-stream")));
        Assert.That(message.Headers.Count, Is.EqualTo(3));
        Assert.That(Encoding.UTF8.GetString(message.Payload.Span), Is.EqualTo(payload));
    }

    private static void AssertInvokeComplete(EventStreamMessage message, string json)
    {
        Assert.That((message.MessageType, message.EventType, message.ContentType), Is.EqualTo(("event", "InvokeComplete", "application/json")));
        Assert.That(Encoding.UTF8.GetString(message.Payload.Span), Is.EqualTo(json));
    }
}
