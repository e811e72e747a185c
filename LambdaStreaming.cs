// LambdaStreaming.cs: Lambda InvokeWithResponseStream's answer (an AWS event stream) turned into the payload chunks
// the function wrote, with a failure in the middle of the stream thrown, never dropped. Needs EventStream.cs; BCL only.
//
//   await foreach (ReadOnlyMemory<byte> chunk in LambdaResponseStreamReader.ReadChunksAsync(messages, "my-function", requestId))
//       Console.Write(Encoding.UTF8.GetString(chunk.Span));
//
// The stream is PayloadChunk events (raw bytes), then one InvokeComplete event, JSON {ErrorCode, ErrorDetails,
// LogResult}: an ErrorCode is the function failing after some chunks, thrown as LambdaStreamingFunctionException. A
// stream that ends without InvokeComplete is incomplete, thrown as EventStreamException (Truncated).
#nullable enable

using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>
/// A Lambda function whose response was streaming failed: its <c>InvokeComplete</c> event carried an
/// <see cref="ErrorCode"/>. The chunks before it did arrive (<see cref="ChunksReceived"/>), but the response is
/// incomplete.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaStreamingFunctionException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="functionName">The function name as the caller gave it.</param>
    /// <param name="errorCode"><c>InvokeComplete.ErrorCode</c>.</param>
    /// <param name="errorDetails"><c>InvokeComplete.ErrorDetails</c>, if any.</param>
    /// <param name="log">The decoded <c>InvokeComplete.LogResult</c> (the last 4 KB of the log), if asked for.</param>
    /// <param name="requestId">Lambda's request id, if known.</param>
    /// <param name="chunksReceived">How many payload chunks arrived before the failure.</param>
    /// <param name="bytesReceived">How many payload bytes arrived before the failure.</param>
    public LambdaStreamingFunctionException(string functionName, string errorCode, string? errorDetails, string? log, string? requestId,
        int chunksReceived, long bytesReceived)
        : base($"Lambda function '{functionName}' failed in the middle of its response stream, after {chunksReceived} chunks ({bytesReceived} bytes): " +
               $"{errorCode}{(string.IsNullOrEmpty(errorDetails) ? "" : ": " + Utf8Text.Clip(errorDetails))}" + (requestId is null ? "" : $" (request id {requestId})"))
    {
        FunctionName = functionName;
        ErrorCode = errorCode;
        ErrorDetails = errorDetails;
        Log = log;
        RequestId = requestId;
        ChunksReceived = chunksReceived;
        BytesReceived = bytesReceived;
    }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The error code of the <c>InvokeComplete</c> event.</summary>
    public string ErrorCode { get; }

    /// <summary>The error details of the <c>InvokeComplete</c> event, if any.</summary>
    public string? ErrorDetails { get; }

    /// <summary>The last 4 KB of the function's log, decoded, when the log tail was asked for; else null.</summary>
    public string? Log { get; }

    /// <summary>Lambda's request id, if known.</summary>
    public string? RequestId { get; }

    /// <summary>How many payload chunks arrived before the failure.</summary>
    public int ChunksReceived { get; }

    /// <summary>How many payload bytes arrived before the failure.</summary>
    public long BytesReceived { get; }
}

/// <summary>What a Lambda response stream told besides its chunks, known once it has ended.</summary>
internal sealed class LambdaStreamSummary
{
    public bool Completed { get; set; }
    public int ChunksReceived { get; set; }
    public long BytesReceived { get; set; }
    /// <summary>The decoded <c>LogResult</c> of <c>InvokeComplete</c>, if any.</summary>
    public string? Log { get; set; }
}

/// <summary>Maps the messages of an InvokeWithResponseStream answer to the function's payload chunks.</summary>
internal static class LambdaResponseStreamReader
{
    /// <summary>
    /// Each <c>PayloadChunk</c>'s bytes as it arrives (the message's own array: no copy). <c>InvokeComplete</c> with an
    /// <c>ErrorCode</c> throws <see cref="LambdaStreamingFunctionException"/>; without one it ends the chunks (and fills
    /// <paramref name="summary"/>). An exception or error message throws <see cref="EventStreamErrorException"/>; a
    /// stream that ends without <c>InvokeComplete</c> throws <see cref="EventStreamException"/>
    /// (<see cref="EventStreamErrorKind.Truncated"/>). Other event types are skipped (a newer service may add some).
    /// </summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadChunksAsync(IAsyncEnumerable<EventStreamMessage> messages,
        string functionName, string? requestId, LambdaStreamSummary? summary = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(functionName);
        summary ??= new LambdaStreamSummary();
        await foreach (var message in messages.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            // Whatever follows InvokeComplete is read (so that the connection ends cleanly) and ignored.
            if (summary.Completed) continue;
            message.EnsureEvent();
            if (message.IsEvent("PayloadChunk"))
            {
                summary.ChunksReceived++;
                summary.BytesReceived += message.Payload.Length;
                yield return message.Payload;
            }
            else if (message.IsEvent("InvokeComplete"))
            {
                Complete(message.Payload.Span, functionName, requestId, summary);
            }
        }
        if (!summary.Completed)
            throw new EventStreamException(EventStreamErrorKind.Truncated,
                $"The response stream of Lambda function '{functionName}' ended after {summary.ChunksReceived} chunks ({summary.BytesReceived} bytes) " +
                "without its InvokeComplete event: the response is incomplete." + (requestId is null ? "" : $" (request id {requestId})"));
    }

    private static void Complete(ReadOnlySpan<byte> json, string functionName, string? requestId, LambdaStreamSummary summary)
    {
        var (errorCode, errorDetails, logResult) = ReadInvokeComplete(json);
        summary.Log = DecodeLog(logResult);
        if (!string.IsNullOrEmpty(errorCode))
            throw new LambdaStreamingFunctionException(functionName, errorCode, errorDetails, summary.Log, requestId, summary.ChunksReceived, summary.BytesReceived);
        summary.Completed = true;
    }

    // InvokeComplete's JSON: {"ErrorCode": ..., "ErrorDetails": ..., "LogResult": ...}, every member optional.
    internal static (string? ErrorCode, string? ErrorDetails, string? LogResult) ReadInvokeComplete(ReadOnlySpan<byte> json)
    {
        string? code = null, details = null, log = null;
        if (json.IsEmpty) return (code, details, log);
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw NotAnObject(json);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                reader.Read();
                string? value = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
                switch (name)
                {
                    case "ErrorCode": code = value; break;
                    case "ErrorDetails": details = value; break;
                    case "LogResult": log = value; break;
                }
            }
        }
        catch (JsonException e)
        {
            throw NotAnObject(json, e);
        }
        return (code, details, log);
    }

    private static EventStreamException NotAnObject(ReadOnlySpan<byte> json, Exception? inner = null) =>
        new(EventStreamErrorKind.InvalidPayload,
            "Lambda's InvokeComplete event must carry a JSON object {ErrorCode, ErrorDetails, LogResult}; it carried: " +
            Utf8Text.Clip(json), innerException: inner);

    private static string? DecodeLog(string? base64)
    {
        if (string.IsNullOrEmpty(base64)) return null;
        var bytes = new byte[base64.Length * 3 / 4 + 3];
        return Convert.TryFromBase64String(base64, bytes, out int length) ? Encoding.UTF8.GetString(bytes, 0, length) : base64;
    }
}
