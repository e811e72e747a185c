using System.Diagnostics;
using System.Net;
using System.Text;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;
using static SigV4Lite.Tests.StreamingFunctions;

namespace SigV4Lite.Tests;

/// <summary>
/// The pieces the send pipeline will use for InvokeWithResponseStream, against the emulator through a signed
/// HttpClient: an HTTP response's event stream read as messages arrive (back-pressure, cancellation and an early
/// break closing the connection at once), and those messages mapped to the function's chunks.
/// </summary>
public class LambdaStreamingTests : SignedEmulatorFixture
{
    // Without the abort, the HTTP stack would drain the response for up to 2 s (its default) before closing.
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(1.5);

    [SetUp]
    public void ClearCounters() => Emulator.Counters.Reset();

    [Test]
    public async Task ManyChunksArriveInOrderAndTheLogIsDecoded()
    {
        Emulator.AddStreamingFunction("many", async (invocation, response, cancellationToken) =>
        {
            invocation.Log("wrote 500 chunks ✓");
            for (int i = 0; i < 500; i++)
                await response.WriteAsync(Chunk(i), cancellationToken);
        });
        var summary = new LambdaStreamSummary();
        var received = new List<byte[]>();
        await foreach (var chunk in StreamAsync("many", summary, logType: "Tail"))
            received.Add(chunk.ToArray());

        Assert.That(received, Has.Count.EqualTo(500));
        for (int i = 0; i < 500; i++) Assert.That(received[i], Is.EqualTo(Chunk(i)), $"chunk {i}");
        Assert.That(summary.Completed, Is.True);
        Assert.That(summary.ChunksReceived, Is.EqualTo(500));
        Assert.That(summary.BytesReceived, Is.EqualTo(received.Sum(c => c.Length)));
        Assert.That(summary.Log, Is.EqualTo("wrote 500 chunks ✓\n"));
    }

    [Test]
    public async Task FunctionFailingMidStreamIsThrownAfterTheChunksBeforeIt()
    {
        Emulator.AddStreamingFunction("fails-late", FailsAfterTwoChunks);
        var received = new List<string>();
        var e = Assert.ThrowsAsync<LambdaStreamingFunctionException>(async () =>
        {
            await foreach (var chunk in StreamAsync("fails-late", logType: "Tail")) received.Add(Encoding.UTF8.GetString(chunk.Span));
        });
        Assert.That(received, Is.EqualTo(new[] { "one", "two" }));
        Assert.That((e!.ErrorCode, e.ErrorDetails, e.Log), Is.EqualTo(("Runtime.StreamError", "upstream closed", "about to fail\n")));
        Assert.That((e.ChunksReceived, e.BytesReceived, e.FunctionName), Is.EqualTo((2, 6L, "fails-late")));
        Assert.That(e.RequestId, Is.Not.Null);
        Assert.That(e.Message, Does.Contain("'fails-late' failed in the middle of its response stream, after 2 chunks (6 bytes): Runtime.StreamError: upstream closed"));
    }

    [Test]
    public async Task StreamCutShortIsATruncatedError()
    {
        Emulator.AddStreamingFunction("cut-short", (invocation, response, cancellationToken) => response.WriteAsync("only chunk", cancellationToken));
        Emulator.Faults.TruncateNext(1);
        int chunks = 0;
        var e = Assert.ThrowsAsync<LambdaStreamException>(async () => { await foreach (var _ in StreamAsync("cut-short")) chunks++; });
        Assert.That(e!.InnerException, Is.TypeOf<EventStreamException>().With.Property("Kind").EqualTo(EventStreamErrorKind.Truncated));
        Assert.That((e.ChunksReceived, e.BytesReceived, e.FunctionName), Is.EqualTo((1, 10L, "cut-short")));
        Assert.That(e.Message, Does.StartWith("The response stream of Lambda function 'cut-short' broke after 1 chunks (10 bytes), so the response is incomplete: The event stream ended in the middle of a message"));
        Assert.That(chunks, Is.EqualTo(1));
    }

    [Test]
    public void StreamEndingWithoutInvokeCompleteIsATruncatedError()
    {
        byte[] body = Encode("PayloadChunk", "abc"u8.ToArray());
        var e = Assert.ThrowsAsync<LambdaStreamException>(async () => { await foreach (var _ in StubStreamAsync(body)) { } });
        Assert.That(e!.InnerException, Is.TypeOf<EventStreamException>().With.Property("Kind").EqualTo(EventStreamErrorKind.Truncated));
        Assert.That(e.Message, Is.EqualTo("The response stream of Lambda function 'stub' broke after 1 chunks (3 bytes), so the response is incomplete: " +
            "The event stream ended without its InvokeComplete event."));
    }

    [Test]
    public void ExceptionMessageInTheStreamIsThrown()
    {
        byte[] body = EventStreamEncoder.Encode(
            [new(":message-type", "exception"), new(":exception-type", "ServiceException"), new(":content-type", "application/json")],
            """{"message":"internal failure"}"""u8);
        var e = Assert.ThrowsAsync<LambdaStreamException>(async () => { await foreach (var _ in StubStreamAsync(body)) { } });
        var inner = e!.InnerException as EventStreamErrorException;
        Assert.That((inner?.ErrorCode, inner?.ErrorMessage), Is.EqualTo(("ServiceException", "internal failure")));
        Assert.That(e.Message, Does.EndWith("so the response is incomplete: The event stream carried an exception: ServiceException: internal failure"));
    }

    [Test]
    public void InvokeCompleteThatIsNotAnObjectIsAnInvalidPayload()
    {
        byte[] body = Encode("InvokeComplete", "[1]"u8.ToArray());
        var e = Assert.ThrowsAsync<LambdaStreamException>(async () => { await foreach (var _ in StubStreamAsync(body)) { } });
        Assert.That(e!.InnerException, Is.TypeOf<EventStreamException>().With.Property("Kind").EqualTo(EventStreamErrorKind.InvalidPayload));
        Assert.That(e.Message, Does.Contain("JSON object {ErrorCode, ErrorDetails, LogResult}; it carried: [1]"));
    }

    [Test]
    public async Task UnknownEventsAreSkippedAndWhatFollowsInvokeCompleteIsIgnored()
    {
        byte[] body = [.. Encode("Heartbeat", []), .. Encode("PayloadChunk", "x"u8.ToArray()), .. Encode("InvokeComplete", "{}"u8.ToArray()),
            .. Encode("PayloadChunk", "late"u8.ToArray())];
        var received = new List<string>();
        await foreach (var chunk in StubStreamAsync(body)) received.Add(Encoding.UTF8.GetString(chunk.Span));
        Assert.That(received, Is.EqualTo(new[] { "x" }));
    }

    [Test]
    public async Task CancellingWhileWaitingClosesTheConnectionAtOnce()
    {
        var function = new WaitingStreamFunction("first");
        Emulator.AddStreamingFunction("waits", function.Handle);
        using var cancel = new CancellationTokenSource();
        await using var chunks = StreamAsync("waits", cancellationToken: cancel.Token).GetAsyncEnumerator(cancel.Token);
        Assert.That(await chunks.MoveNextAsync(), Is.True);
        Assert.That(Encoding.UTF8.GetString(chunks.Current.Span), Is.EqualTo("first"));
        var next = chunks.MoveNextAsync().AsTask();
        await Task.Delay(50);
        Assert.That(next.IsCompleted, Is.False, "the function is taking longer than the caller waits");

        var clock = Stopwatch.StartNew();
        cancel.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await next);
        await function.Cancelled.WaitAsync(Patience);
        await LambdaTestSupport.EventuallyAsync(() => Emulator.Counters.Disconnects == 1, "the emulator sees the connection close");
        Assert.That(clock.Elapsed, Is.LessThan(AtOnce));
    }

    [Test]
    public async Task BreakingOutOfTheLoopClosesTheConnectionAtOnce()
    {
        var function = new WaitingStreamFunction("zero", "one");
        Emulator.AddStreamingFunction("keeps-going", function.Handle);
        var clock = new Stopwatch();
        await foreach (var chunk in StreamAsync("keeps-going"))
        {
            clock.Start();
            break;
        }
        await function.Cancelled.WaitAsync(Patience);
        await LambdaTestSupport.EventuallyAsync(() => Emulator.Counters.Disconnects == 1, "the emulator sees the connection close");
        Assert.That(clock.Elapsed, Is.LessThan(AtOnce));
    }

    [Test]
    public async Task SlowConsumerHoldsTheFunctionBackWithBoundedMemory()
    {
        const int ChunkLength = 64 * 1024;
        const int Chunks = 4096; // 256 MiB if nothing held the function back
        LambdaResponseStream? writer = null;
        Emulator.AddStreamingFunction("firehose", async (invocation, response, cancellationToken) =>
        {
            writer = response;
            byte[] chunk = new byte[ChunkLength];
            for (int i = 0; i < Chunks; i++) await response.WriteAsync(chunk, cancellationToken);
        });
        using var cancel = new CancellationTokenSource();
        long heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        int consumed = 0;
        await using (var chunks = StreamAsync("firehose", cancellationToken: cancel.Token).GetAsyncEnumerator(cancel.Token))
        {
            for (; consumed < 8; consumed++)
            {
                Assert.That(await chunks.MoveNextAsync(), Is.True);
                await Task.Delay(20);
            }
            // The consumer pauses: the function must stall once the socket buffers are full.
            long written;
            do
            {
                written = writer!.ChunksWritten;
                await Task.Delay(300);
            }
            while (writer.ChunksWritten != written);
            long heapWhileStalled = GC.GetTotalMemory(forceFullCollection: true);
            Assert.That(written - consumed, Is.LessThan(16 * 1024 * 1024 / ChunkLength),
                "no more than 16 MiB (socket and HTTP buffers) between the function and a consumer that stopped taking chunks");
            Assert.That(heapWhileStalled - heapBefore, Is.LessThan(32L * 1024 * 1024), "the client holds no more than its buffer");
            cancel.Cancel();
            Assert.CatchAsync<OperationCanceledException>(async () => await chunks.MoveNextAsync());
        }
        Assert.That(writer!.ChunksWritten, Is.LessThan(Chunks));
    }

    [Test]
    public async Task AThousandConcurrentStreams()
    {
        Emulator.AddStreamingFunction("concurrent", FiveTaggedChunks);
        var streams = Enumerable.Range(0, 1000).Select(async i =>
        {
            var text = new StringBuilder();
            await foreach (var chunk in StreamAsync("concurrent", payload: i.ToString(System.Globalization.CultureInfo.InvariantCulture)))
                text.Append(Encoding.UTF8.GetString(chunk.Span));
            return (i, text.ToString());
        });
        var results = await Task.WhenAll(streams).WaitAsync(TimeSpan.FromMinutes(2));
        foreach (var (i, text) in results)
            Assert.That(text, Is.EqualTo(FiveTaggedChunksText(i)));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1000));
        Assert.That(Emulator.Counters.Disconnects, Is.Zero);
    }

    // What the pipeline will do: send, check the answer is an event stream, read it as chunks.
    private async IAsyncEnumerable<ReadOnlyMemory<byte>> StreamAsync(string functionName, LambdaStreamSummary? summary = null,
        string? logType = null, string payload = "{}", [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        HttpResponseMessage response;
        using (var request = InvokeWithResponseStream(functionName, payload, logType: logType))
            response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(EventStreamHttp.ContentType));
        string? requestId = Header(response, "x-amzn-RequestId");
        var messages = EventStreamHttp.ReadMessagesAsync(response, cancellationToken);
        await foreach (var chunk in LambdaResponseStreamReader.ReadChunksAsync(messages, functionName, requestId, summary, cancellationToken))
            yield return chunk;
    }

    private static IAsyncEnumerable<ReadOnlyMemory<byte>> StubStreamAsync(byte[] body)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new MemoryStream(body)) };
        return LambdaResponseStreamReader.ReadChunksAsync(EventStreamHttp.ReadMessagesAsync(response), "stub", null);
    }

    private static byte[] Encode(string eventType, byte[] payload) =>
        EventStreamEncoder.Encode([new(":message-type", "event"), new(":event-type", eventType)], payload);
}
