using System.Text;
using System.Text.Json;

namespace SigV4Lite.Tests;

/// <summary>
/// Frames shaped like Bedrock runtime's ConverseStream answer (the event names and JSON members of the Bedrock runtime
/// API reference: messageStart, contentBlockDelta with delta.text, contentBlockStop, messageStop with stopReason,
/// metadata with usage and metrics; the modelled exceptions such as throttlingException), for the loopback fake that
/// the README's Bedrock recipe runs against (ConverseStreamRecipeTests); and the text deltas read back from them.
/// </summary>
public class ConverseStreamFrameTests
{
    [Test]
    public async Task TextDeltasAreReadInOrderAndTheStreamEndsWithMetadata()
    {
        byte[] stream = ConverseStreamFrames.Answer(["Hello", ", ", "wörld", "!"]);
        var text = new StringBuilder();
        string? stopReason = null;
        int? outputTokens = null;
        await using var reader = new EventStreamReader(new ChunkedStream(stream, n => 1 + n % 17));
        await foreach (var message in reader.ReadAllAsync())
        {
            message.EnsureEvent();
            using var json = JsonDocument.Parse(message.Payload);
            if (message.IsEvent("contentBlockDelta")) text.Append(json.RootElement.GetProperty("delta").GetProperty("text").GetString());
            else if (message.IsEvent("messageStop")) stopReason = json.RootElement.GetProperty("stopReason").GetString();
            else if (message.IsEvent("metadata")) outputTokens = json.RootElement.GetProperty("usage").GetProperty("outputTokens").GetInt32();
        }
        Assert.That(text.ToString(), Is.EqualTo("Hello, wörld!"));
        Assert.That((stopReason, outputTokens), Is.EqualTo(("end_turn", 4)));
    }

    [Test]
    public async Task ThrottlingInTheMiddleIsAnExceptionMessage()
    {
        byte[] stream = [.. ConverseStreamFrames.Event("messageStart", new { role = "assistant" }),
            .. ConverseStreamFrames.Event("contentBlockDelta", new { contentBlockIndex = 0, delta = new { text = "Hel" } }),
            .. ConverseStreamFrames.Exception("throttlingException", "Too many tokens, please wait before trying again.")];
        await using var reader = new EventStreamReader(new MemoryStream(stream));
        int events = 0;
        var e = Assert.ThrowsAsync<EventStreamErrorException>(async () =>
        {
            await foreach (var message in reader.ReadAllAsync())
            {
                message.EnsureEvent();
                events++;
            }
        });
        Assert.That(events, Is.EqualTo(2));
        Assert.That((e!.Kind, e.ErrorCode, e.ErrorMessage), Is.EqualTo((EventStreamErrorKind.ExceptionMessage, "throttlingException", "Too many tokens, please wait before trying again.")));
    }
}

/// <summary>ConverseStream-shaped frames: JSON event payloads named by <c>:event-type</c>, as restJson1 event streams send them.</summary>
internal static class ConverseStreamFrames
{
    public static byte[] Answer(IReadOnlyList<string> deltas) =>
    [
        .. Event("messageStart", new { role = "assistant" }),
        .. deltas.SelectMany(text => Event("contentBlockDelta", new { contentBlockIndex = 0, delta = new { text } })),
        .. Event("contentBlockStop", new { contentBlockIndex = 0 }),
        .. Event("messageStop", new { stopReason = "end_turn" }),
        .. Event("metadata", new { usage = new { inputTokens = 12, outputTokens = deltas.Count, totalTokens = 12 + deltas.Count }, metrics = new { latencyMs = 321 } }),
    ];

    public static byte[] Event(string eventType, object body) =>
        EventStreamEncoder.Encode([new(":event-type", eventType), new(":content-type", "application/json"), new(":message-type", "event")],
            JsonSerializer.SerializeToUtf8Bytes(body));

    public static byte[] Exception(string exceptionType, string message) =>
        EventStreamEncoder.Encode([new(":exception-type", exceptionType), new(":content-type", "application/json"), new(":message-type", "exception")],
            JsonSerializer.SerializeToUtf8Bytes(new { message }));
}
