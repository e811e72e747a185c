using System.Diagnostics;
using System.Net;
using System.Text;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.StreamingFunctions;

namespace SigV4Lite.Tests;

/// <summary>
/// LambdaClient.InvokeWithResponseStreamAsync against the emulator: chunks in order as the function writes them, a
/// function failing mid-stream, cancellation and an early end closing the connection at once, retries before the
/// stream, DryRun, Event refused, a broken stream, many streams at once.
/// </summary>
public class LambdaClientStreamingTests : EmulatorFixture
{
    // Without the abort, the HTTP stack would drain the response for up to 2 s (its default) before closing.
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(1.5);

    private readonly RecordedDelays _delays = new();
    private LambdaEmulator _emulator = null!;
    private LambdaClient _lambda = null!;

    protected override void AddFunctions(LambdaEmulator emulator)
    {
        _emulator = emulator;
        _lambda = LambdaTestSupport.NewClient(emulator, _delays);
    }

    [OneTimeTearDown]
    public void DisposeClient() => _lambda.Dispose();

    [Test]
    public async Task ManyChunksArriveInOrder_EachStaysValid_AndTheLogComesAtTheEnd()
    {
        LambdaInvocation? seen = null;
        _emulator.AddStreamingFunction("many", async (invocation, response, cancellationToken) =>
        {
            seen = invocation;
            invocation.Log("wrote 300 chunks");
            for (int i = 0; i < 300; i++) await response.WriteAsync(Chunk(i), cancellationToken);
        });
        var request = new LambdaRequest("many", """{"n": 300}""") { Qualifier = "live", LogType = LambdaLogType.Tail, ClientContext = """{"custom":{"user":"42"}}""" };

        await using var response = await _lambda.InvokeWithResponseStreamAsync(request);
        Assert.That((response.StatusCode, response.ExecutedVersion, response.FunctionName), Is.EqualTo((200, "live", "many")));
        Assert.That(Guid.TryParse(response.RequestId, out _), Is.True, "the request id is Lambda's");
        Assert.That(response.Log, Is.Null, "the log comes with the end of the stream");
        var chunks = new List<ReadOnlyMemory<byte>>(); // kept as handed out: no copy
        await foreach (var chunk in response.ReadChunksAsync()) chunks.Add(chunk);

        Assert.That(chunks, Has.Count.EqualTo(300));
        for (int i = 0; i < 300; i++) Assert.That(chunks[i].ToArray(), Is.EqualTo(Chunk(i)), $"chunk {i}");
        Assert.That(response.Log, Is.EqualTo("wrote 300 chunks\n"));
        Assert.That((seen!.Qualifier, seen.ClientContext, Encoding.UTF8.GetString(seen.Payload.Span)),
            Is.EqualTo(("live", """{"custom":{"user":"42"}}""", """{"n": 300}""")));
        Assert.That(_emulator.Counters.Disconnects, Is.Zero);
    }

    [Test]
    public async Task FunctionFailingMidStream_IsThrownAtItsPlace_WithCodeDetailsAndLog()
    {
        _emulator.AddStreamingFunction("fails-late", FailsAfterTwoChunks);
        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("fails-late", "{}") { LogType = LambdaLogType.Tail });
        var received = new List<string>();

        var e = Assert.ThrowsAsync<LambdaStreamingFunctionException>(async () =>
        {
            await foreach (var chunk in response.ReadChunksAsync()) received.Add(Encoding.UTF8.GetString(chunk.Span));
        })!;

        Assert.That(received, Is.EqualTo(new[] { "one", "two" }));
        Assert.That((e.ErrorCode, e.ErrorDetails, e.Log), Is.EqualTo(("Runtime.StreamError", "upstream closed", "about to fail\n")));
        Assert.That((e.ChunksReceived, e.BytesReceived, e.RequestId), Is.EqualTo((2, 6L, response.RequestId)));
        Assert.That(e, Is.InstanceOf<AwsException>(), "every failure of the Lambda client is an AwsException");
        Assert.That(e.Message, Is.EqualTo("Lambda function 'fails-late' failed in the middle of its response stream, after 2 chunks (6 bytes): " +
            $"Runtime.StreamError: upstream closed (request id {response.RequestId})"));
        Assert.That(response.Log, Is.Null, "the stream did not complete");
    }

    [Test]
    public async Task CancellingInTheMiddle_ClosesTheConnectionAtOnce()
    {
        var function = new WaitingStreamFunction("first");
        _emulator.AddStreamingFunction("waits", function.Handle);
        using var cancel = new CancellationTokenSource();
        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("waits", "{}"));
        var clock = new Stopwatch();

        Assert.CatchAsync<OperationCanceledException>(async () =>
        {
            await foreach (var chunk in response.ReadChunksAsync(cancel.Token))
            {
                Assert.That(Encoding.UTF8.GetString(chunk.Span), Is.EqualTo("first"));
                clock.Start();
                cancel.CancelAfter(50); // while the next read waits for the function
            }
        });

        await ClosedAtOnceAsync(function, clock);
    }

    [Test]
    public async Task BreakingOutOfTheLoop_ClosesTheConnectionAtOnce()
    {
        var function = new WaitingStreamFunction("a", "b", "c", "d");
        _emulator.AddStreamingFunction("keeps-going", function.Handle);
        var clock = new Stopwatch();
        int read = 0;
        await using (var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("keeps-going", "{}")))
        {
            await foreach (var chunk in response.ReadChunksAsync())
            {
                if (++read < 3) continue;
                clock.Start();
                break;
            }
        }
        await ClosedAtOnceAsync(function, clock);
    }

    [Test]
    public async Task DisposingUnread_ClosesTheConnectionAtOnce()
    {
        var function = new WaitingStreamFunction("never read");
        _emulator.AddStreamingFunction("unread", function.Handle);
        var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("unread", "{}"));
        var clock = Stopwatch.StartNew();
        await response.DisposeAsync();

        await ClosedAtOnceAsync(function, clock);
        Assert.Throws<ObjectDisposedException>(() => response.ReadChunksAsync().GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult());
    }

    [Test]
    public async Task UnknownFunctions_StreamTheEchoInFourChunksOverTime()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true });
        using var lambda = LambdaTestSupport.NewClient(emulator);
        await using var response = await lambda.InvokeWithResponseStreamAsync(new LambdaRequest("anything", """{"hello": 1}"""));
        var chunks = new List<string>();
        var arrivals = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();

        await foreach (var chunk in response.ReadChunksAsync())
        {
            arrivals.Add(clock.Elapsed);
            chunks.Add(Encoding.UTF8.GetString(chunk.Span));
        }

        Assert.That(string.Concat(chunks), Is.EqualTo("""{"function":"anything","payload":{"hello": 1}}"""));
        Assert.That(chunks, Has.Count.EqualTo(4));
        Assert.That(arrivals[3] - arrivals[0], Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(40)), "the chunks came over time (50 ms apart), not all at once");
        var buffered = await lambda.InvokeAsync(new LambdaRequest("anything", """{"hello": 1}"""));
        Assert.That(buffered.GetPayloadString(), Is.EqualTo(string.Concat(chunks)), "Invoke answers the same echo at once");
    }

    [Test]
    public async Task ThrottledBeforeTheStream_IsRetried()
    {
        _emulator.AddStreamingFunction("popular", (invocation, response, cancellationToken) => response.WriteAsync("made it", cancellationToken));
        _emulator.Faults.ThrottleNext(1, reason: "ConcurrentInvocationLimitExceeded");
        int delaysBefore = _delays.Delays.Count;

        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("popular", "{}"));
        var text = new StringBuilder();
        await foreach (var chunk in response.ReadChunksAsync()) text.Append(Encoding.UTF8.GetString(chunk.Span));

        Assert.That(text.ToString(), Is.EqualTo("made it"));
        Assert.That(_emulator.Counters.Requests, Is.EqualTo(2), "the 429 and the retry");
        Assert.That(_delays.Delays.Count - delaysBefore, Is.EqualTo(1), "one backoff before the retry");
    }

    [Test]
    public async Task ServiceErrorBeforeTheStream_IsAnAwsServiceException()
    {
        var e = Assert.ThrowsAsync<AwsServiceException>(() => _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("no-such-function", "{}")))!;

        Assert.That((e.StatusCode, e.ErrorCode, e.OperationName), Is.EqualTo((HttpStatusCode.NotFound, "ResourceNotFoundException", "InvokeWithResponseStream")));
        Assert.That(e.Message, Does.StartWith("Lambda InvokeWithResponseStream answered 404 ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function"));
        await Task.CompletedTask;
    }

    [Test]
    public async Task DryRun_Answers204WithNoChunk_AndRunsNothing()
    {
        int runs = 0;
        _emulator.AddStreamingFunction("checked", (invocation, response, cancellationToken) =>
        {
            Interlocked.Increment(ref runs);
            return response.WriteAsync("ran", cancellationToken);
        });

        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("checked", "{}") { InvocationType = LambdaInvocationType.DryRun, Qualifier = "7" });
        int chunks = 0;
        await foreach (var _ in response.ReadChunksAsync()) chunks++;

        Assert.That((response.StatusCode, response.ExecutedVersion, chunks, runs), Is.EqualTo((204, "7", 0, 0)));
        Assert.That(_emulator.Counters.Requests, Is.EqualTo(1));
    }

    [Test]
    public void EventInvocation_IsRefusedBeforeSending()
    {
        var e = Assert.Throws<ArgumentException>(() => _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("f", "{}") { InvocationType = LambdaInvocationType.Event }))!;

        Assert.That(e.ParamName, Is.EqualTo("request"));
        Assert.That(e.Message, Does.StartWith("InvokeWithResponseStream runs a function synchronously: InvocationType must be RequestResponse or DryRun. " +
            "For an asynchronous (Event) invocation, use InvokeAsync."));
        Assert.That(_emulator.Counters.Requests, Is.Zero, "nothing was sent");
    }

    [Test]
    public void MalformedRequest_IsRefusedBeforeSending_AsForInvoke()
    {
        var e = Assert.Throws<ArgumentException>(() => _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("f", "{}") { Qualifier = "no/slash" }))!;

        Assert.That(e.Message, Does.StartWith("The qualifier 'no/slash' is not a version or alias"));
        Assert.That(_emulator.Counters.Requests, Is.Zero, "nothing was sent");
    }

    [Test]
    public async Task TruncatedStream_IsALambdaStreamException_SayingHowMuchArrived()
    {
        _emulator.AddStreamingFunction("cut-short", (invocation, response, cancellationToken) => response.WriteAsync("only chunk", cancellationToken));
        _emulator.Faults.TruncateNext(1);
        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("cut-short", "{}"));
        int chunks = 0;

        var e = Assert.ThrowsAsync<LambdaStreamException>(async () => { await foreach (var _ in response.ReadChunksAsync()) chunks++; })!;

        Assert.That(chunks, Is.EqualTo(1));
        Assert.That(e, Is.InstanceOf<AwsException>(), "catching AwsException catches a broken stream too");
        Assert.That((e.ChunksReceived, e.BytesReceived, e.RequestId), Is.EqualTo((1, 10L, response.RequestId)));
        Assert.That(e.InnerException, Is.TypeOf<EventStreamException>().With.Property("Kind").EqualTo(EventStreamErrorKind.Truncated));
    }

    [Test]
    public async Task ConnectionLostMidStream_IsALambdaStreamException_WithTheIOException()
    {
        byte[] firstChunk = EventStreamEncoder.Encode([new(":message-type", "event"), new(":event-type", "PayloadChunk")], "partial"u8);
        using var lambda = StubHandler.Client(new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new FailingStream(firstChunk)) }));
        await using var response = await lambda.InvokeWithResponseStreamAsync(new LambdaRequest("f", "{}"));
        var received = new List<string>();

        var e = Assert.ThrowsAsync<LambdaStreamException>(async () =>
        {
            await foreach (var chunk in response.ReadChunksAsync()) received.Add(Encoding.UTF8.GetString(chunk.Span));
        })!;

        Assert.That(received, Is.EqualTo(new[] { "partial" }));
        Assert.That(e.InnerException, Is.TypeOf<IOException>().With.Message.EqualTo("connection reset"));
        Assert.That(e.Message, Is.EqualTo("The response stream of Lambda function 'f' broke after 1 chunks (7 bytes), so the response is incomplete: connection reset"));
    }

    [Test]
    public async Task ReadingTwice_IsRefused()
    {
        _emulator.AddStreamingFunction("once", (invocation, response, cancellationToken) => response.WriteAsync("x", cancellationToken));
        await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("once", "{}"));
        await foreach (var _ in response.ReadChunksAsync()) { }

        var e = Assert.ThrowsAsync<InvalidOperationException>(async () => { await foreach (var _ in response.ReadChunksAsync()) { } })!;

        Assert.That(e.Message, Is.EqualTo("The response stream of 'once' has been read already: it can be read once."));
    }

    [Test]
    public async Task TwoHundredConcurrentStreams_EachGetsItsOwnChunksInOrder()
    {
        _emulator.AddStreamingFunction("concurrent", FiveTaggedChunks);
        var streams = Enumerable.Range(0, 200).Select(async i =>
        {
            await using var response = await _lambda.InvokeWithResponseStreamAsync(new LambdaRequest("concurrent", i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            var text = new StringBuilder();
            await foreach (var chunk in response.ReadChunksAsync()) text.Append(Encoding.UTF8.GetString(chunk.Span));
            return (i, text.ToString());
        });

        var results = await Task.WhenAll(streams).WaitAsync(TimeSpan.FromMinutes(1));

        foreach (var (i, text) in results)
            Assert.That(text, Is.EqualTo(FiveTaggedChunksText(i)));
        Assert.That(_emulator.Counters.Requests, Is.EqualTo(200));
        Assert.That(_emulator.Counters.MaxInFlight, Is.GreaterThan(1), "the streams overlapped");
        Assert.That(_emulator.Counters.Disconnects, Is.Zero);
    }

    // The function's token fires (the emulator saw the caller go), the emulator counts the disconnect, soon after `clock` started.
    private async Task ClosedAtOnceAsync(WaitingStreamFunction function, Stopwatch clock)
    {
        await function.Cancelled.WaitAsync(LambdaTestSupport.Patience);
        await LambdaTestSupport.EventuallyAsync(() => _emulator.Counters.Disconnects == 1, "the emulator sees the connection close");
        Assert.That(clock.Elapsed, Is.LessThan(AtOnce));
    }

    // Gives its bytes, then fails as a reset connection does.
    private sealed class FailingStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Position < Length ? base.ReadAsync(buffer, cancellationToken) : ValueTask.FromException<int>(new IOException("connection reset"));
    }
}
