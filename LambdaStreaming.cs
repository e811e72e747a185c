// LambdaStreaming.cs: Lambda InvokeWithResponseStream: the function's response read as it streams, chunk by chunk,
// with a failure in the middle of the stream thrown, never dropped. Needs EventStream.cs and LambdaInvoke.cs (so
// AwsClient.cs, AwsConfig.cs and SigV4.cs too); BCL only, AOT and trimming safe.
//
//   await using LambdaStreamingResponse response = await lambda.InvokeWithResponseStreamAsync(new LambdaRequest("my-function", "{}"));
//   await foreach (ReadOnlyMemory<byte> chunk in response.ReadChunksAsync(cancellationToken))
//       Console.Write(Encoding.UTF8.GetString(chunk.Span));
//
// The stream is PayloadChunk events (raw bytes), then one InvokeComplete event, JSON {ErrorCode, ErrorDetails,
// LogResult}: an ErrorCode is the function failing after some chunks, thrown as LambdaStreamingFunctionException. A
// stream that breaks (cut short, corrupt, an exception message, the connection lost) is a LambdaStreamException whose
// inner exception says how. Both are AwsExceptions, as every failure of the Lambda client is. Every type compiles as
// internal too.
#nullable enable

using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>
/// The response stream of a Lambda function failed before it completed: the chunks that arrived before the failure
/// (<see cref="ChunksReceived"/>) are all there is. <see cref="Exception.InnerException"/> says what went wrong: an
/// <see cref="EventStreamException"/> (the stream was cut short, was corrupt, or carried an exception message: an
/// <see cref="EventStreamErrorException"/>) or an <see cref="IOException"/> (the connection failed). A function that
/// failed is the derived <see cref="LambdaStreamingFunctionException"/>. Never retried: the function ran.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
class LambdaStreamException : AwsException
{
    /// <summary>Creates the exception for a stream that broke.</summary>
    /// <param name="functionName">The function name as the caller gave it.</param>
    /// <param name="requestId">Lambda's request id, if known.</param>
    /// <param name="chunksReceived">How many payload chunks arrived before the failure.</param>
    /// <param name="bytesReceived">How many payload bytes arrived before the failure.</param>
    /// <param name="innerException">What went wrong.</param>
    public LambdaStreamException(string functionName, string? requestId, int chunksReceived, long bytesReceived, Exception innerException)
        : this($"The response stream of Lambda function '{functionName}' broke after {chunksReceived} chunks ({bytesReceived} bytes), so the response is incomplete: " +
               (innerException ?? throw new ArgumentNullException(nameof(innerException))).Message + RequestIdSuffix(requestId),
               functionName, requestId, chunksReceived, bytesReceived, innerException) { }

    private protected LambdaStreamException(string message, string functionName, string? requestId, int chunksReceived, long bytesReceived, Exception? innerException)
        : base(message, innerException)
    {
        FunctionName = functionName ?? throw new ArgumentNullException(nameof(functionName));
        RequestId = requestId;
        ChunksReceived = chunksReceived;
        BytesReceived = bytesReceived;
    }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>Lambda's request id, if known.</summary>
    public string? RequestId { get; }

    /// <summary>How many payload chunks arrived before the failure.</summary>
    public int ChunksReceived { get; }

    /// <summary>How many payload bytes arrived before the failure.</summary>
    public long BytesReceived { get; }

    private protected static string RequestIdSuffix(string? requestId) => requestId is null ? "" : $" (request id {requestId})";
}

/// <summary>
/// A Lambda function whose response was streaming failed: its <c>InvokeComplete</c> event carried an
/// <see cref="ErrorCode"/>. The chunks before it did arrive (<see cref="LambdaStreamException.ChunksReceived"/>), but
/// the response is incomplete. Never retried: the function ran.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaStreamingFunctionException : LambdaStreamException
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
               $"{errorCode}{(string.IsNullOrEmpty(errorDetails) ? "" : ": " + Utf8Text.Clip(errorDetails))}" + RequestIdSuffix(requestId),
               functionName, requestId, chunksReceived, bytesReceived, null)
    {
        ErrorCode = errorCode ?? throw new ArgumentNullException(nameof(errorCode));
        ErrorDetails = errorDetails;
        Log = log;
    }

    /// <summary>The error code of the <c>InvokeComplete</c> event.</summary>
    public string ErrorCode { get; }

    /// <summary>The error details of the <c>InvokeComplete</c> event, if any.</summary>
    public string? ErrorDetails { get; }

    /// <summary>The last 4 KB of the function's log, decoded, when <see cref="LambdaRequest.LogType"/> asked for it; else null.</summary>
    public string? Log { get; }
}

/// <summary>
/// The answer of <see cref="LambdaClient.InvokeWithResponseStreamAsync"/>: its headers at once, the function's response
/// as it streams (<see cref="ReadChunksAsync"/>, once), then the log. Dispose it (<c>await using</c>): before the end
/// of the stream, that closes the connection at once.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class LambdaStreamingResponse : IAsyncDisposable
{
    private const int Unread = 0, Reading = 1, Ended = 2;

    private readonly HttpResponseMessage _http;
    private readonly LambdaStreamSummary _summary = new();
    private int _state;

    internal LambdaStreamingResponse(string functionName, HttpResponseMessage http)
    {
        FunctionName = functionName;
        _http = http;
        StatusCode = (int)http.StatusCode;
        RequestId = Header(http, "x-amzn-RequestId");
        ExecutedVersion = Header(http, "X-Amz-Executed-Version");
    }

    /// <summary>The function name as the caller gave it.</summary>
    public string FunctionName { get; }

    /// <summary>The HTTP status: 200 (RequestResponse) or 204 (DryRun, no stream).</summary>
    public int StatusCode { get; }

    /// <summary>Lambda's request id (<c>x-amzn-RequestId</c>).</summary>
    public string? RequestId { get; }

    /// <summary>The version that runs (<c>X-Amz-Executed-Version</c>), such as <c>$LATEST</c>; null when not sent.</summary>
    public string? ExecutedVersion { get; }

    /// <summary>The end of the function's log, decoded, once the stream has completed, when
    /// <see cref="LambdaRequest.LogType"/> asked for it; else null. (A failed stream's exception carries it.)</summary>
    public string? Log => _summary.Completed ? _summary.Log : null;

    /// <summary>
    /// The function's response, each chunk as it arrives (nothing is read ahead: a consumer that falls behind holds
    /// the function back). Each chunk's memory is its own: keep it as long as you like. The loop ends when the
    /// function has completed; a DryRun has no chunk. Breaking out of the loop or cancelling closes the connection at
    /// once (and Lambda stops the function's stream). Can be enumerated once.
    /// </summary>
    /// <param name="cancellationToken">Stops reading (an <see cref="OperationCanceledException"/>) and closes the connection.</param>
    /// <exception cref="LambdaStreamingFunctionException">The function failed after the chunks before it; <see cref="LambdaRequest.ThrowOnFunctionError"/>
    /// does not apply to a stream.</exception>
    /// <exception cref="LambdaStreamException">The stream broke: cut short, corrupt, an exception message, the
    /// connection lost (<see cref="Exception.InnerException"/> says which).</exception>
    /// <exception cref="InvalidOperationException">The response was read already.</exception>
    /// <exception cref="ObjectDisposedException">The response was disposed.</exception>
    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadChunksAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int state = Interlocked.CompareExchange(ref _state, Reading, Unread);
        ObjectDisposedException.ThrowIf(state > Ended, this);
        if (state != Unread) throw new InvalidOperationException($"The response stream of '{FunctionName}' has been read already: it can be read once.");
        try
        {
            if (StatusCode == (int)HttpStatusCode.NoContent) yield break; // DryRun: Lambda checked, nothing ran
            var messages = EventStreamHttp.ReadMessagesAsync(_http, cancellationToken);
            await foreach (var chunk in LambdaResponseStreamReader.ReadChunksAsync(messages, FunctionName, RequestId, _summary, cancellationToken).ConfigureAwait(false))
                yield return chunk;
        }
        finally
        {
            // The messages' reader disposed the response (closing the connection if the loop ended early).
            Interlocked.CompareExchange(ref _state, Ended, Reading);
            if (StatusCode == (int)HttpStatusCode.NoContent) _http.Dispose();
        }
    }

    /// <summary>Closes the response: before the end of the stream (unread, or a loop left without disposing its
    /// enumerator), the connection is closed at once rather than drained.</summary>
    public ValueTask DisposeAsync() =>
        Interlocked.Exchange(ref _state, Ended + 1) is Unread or Reading ? EventStreamHttp.CloseAsync(_http) : ValueTask.CompletedTask;

    /// <summary>Shows the function, status, request id and version.</summary>
    public override string ToString() =>
        $"LambdaStreamingResponse {{ FunctionName = {FunctionName}, StatusCode = {StatusCode}, RequestId = {RequestId}, ExecutedVersion = {ExecutedVersion} }}";

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.NonValidated.TryGetValues(name, out var values) ? values.ToString() : null;
}

// InvokeWithResponseStream, beside LambdaInvoke.cs's Invoke.
partial class LambdaClient
{
    private const string StreamPathPrefix = "/2021-11-15/functions/";
    private const string StreamPathSuffix = "/response-streaming-invocations";

    /// <summary>
    /// Invokes a function and returns once Lambda answers with the headers of its response stream: read the function's
    /// chunks as they arrive with <see cref="LambdaStreamingResponse.ReadChunksAsync"/>. Throttling and transient
    /// failures before the stream starts are retried as for <see cref="InvokeAsync"/>; nothing is retried after that.
    /// </summary>
    /// <param name="request">The function, payload and settings: <see cref="LambdaInvocationType.RequestResponse"/> or
    /// <see cref="LambdaInvocationType.DryRun"/>; qualifier, log tail and client context as for Invoke.</param>
    /// <param name="cancellationToken">Cancels the call until the stream's headers arrive; the read has a token of its own.</param>
    /// <returns>The response, to dispose (<c>await using</c>).</returns>
    /// <exception cref="AwsServiceException">Lambda answered with an error before the stream, after any retries.</exception>
    /// <exception cref="AwsTimeoutException">The last attempt timed out before the stream's headers came.</exception>
    /// <exception cref="AwsConnectionException">The connection failed on every attempt.</exception>
    /// <exception cref="ArgumentException">The invocation type is Event, or the function name, qualifier or client
    /// context is malformed; nothing was sent.</exception>
    public Task<LambdaStreamingResponse> InvokeWithResponseStreamAsync(LambdaRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.InvocationType == LambdaInvocationType.Event)
            throw new ArgumentException("InvokeWithResponseStream runs a function synchronously: InvocationType must be RequestResponse or DryRun. " +
                "For an asynchronous (Event) invocation, use InvokeAsync.", nameof(request));
        var wire = LambdaWire.Build(request, StreamPathPrefix, StreamPathSuffix, "InvokeWithResponseStream");
        return SendStreamingAsync(request.FunctionName, wire, cancellationToken);
    }

    private async Task<LambdaStreamingResponse> SendStreamingAsync(string functionName, AwsRequest wire, CancellationToken cancellationToken) =>
        new(functionName, await _client.SendStreamingAsync(wire, cancellationToken).ConfigureAwait(false));
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
    /// <paramref name="summary"/>). A stream that breaks (corrupt, an exception or error message, the connection lost,
    /// or an end without <c>InvokeComplete</c>) throws <see cref="LambdaStreamException"/>. Other event types are
    /// skipped (a newer service may add some).
    /// </summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadChunksAsync(IAsyncEnumerable<EventStreamMessage> messages,
        string functionName, string? requestId, LambdaStreamSummary? summary = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(functionName);
        summary ??= new LambdaStreamSummary();
        var enumerator = messages.WithCancellation(cancellationToken).ConfigureAwait(false).GetAsyncEnumerator();
        try
        {
            while (await NextAsync(enumerator, functionName, requestId, summary).ConfigureAwait(false) is { } message)
                if (IsChunk(message, functionName, requestId, summary)) yield return message.Payload;
        }
        finally
        {
            await enumerator.DisposeAsync();
        }
        if (!summary.Completed)
            throw Broken(functionName, requestId, summary, new EventStreamException(EventStreamErrorKind.Truncated,
                "The event stream ended without its InvokeComplete event."));
    }

    private static async ValueTask<EventStreamMessage?> NextAsync(ConfiguredCancelableAsyncEnumerable<EventStreamMessage>.Enumerator messages,
        string functionName, string? requestId, LambdaStreamSummary summary)
    {
        try
        {
            return await messages.MoveNextAsync() ? messages.Current : null;
        }
        catch (Exception e) when (e is EventStreamException or IOException or HttpRequestException)
        {
            throw Broken(functionName, requestId, summary, e);
        }
    }

    // Counts a chunk and says so; reads InvokeComplete (throwing the function's error). Whatever follows InvokeComplete
    // is read (so that the connection ends cleanly) and ignored.
    private static bool IsChunk(EventStreamMessage message, string functionName, string? requestId, LambdaStreamSummary summary)
    {
        if (summary.Completed) return false;
        try
        {
            message.EnsureEvent();
            if (message.IsEvent("PayloadChunk"))
            {
                summary.ChunksReceived++;
                summary.BytesReceived += message.Payload.Length;
                return true;
            }
            if (message.IsEvent("InvokeComplete")) Complete(message.Payload.Span, functionName, requestId, summary);
            return false;
        }
        catch (EventStreamException e)
        {
            throw Broken(functionName, requestId, summary, e);
        }
    }

    private static LambdaStreamException Broken(string functionName, string? requestId, LambdaStreamSummary summary, Exception cause) =>
        new(functionName, requestId, summary.ChunksReceived, summary.BytesReceived, cause);

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
