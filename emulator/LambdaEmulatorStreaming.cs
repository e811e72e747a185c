using System;
using System.Buffers;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Http;

namespace SigV4Lite.Emulator;

// InvokeWithResponseStream: 200 with application/vnd.amazon.eventstream at once, a PayloadChunk event per write, and
// an InvokeComplete event (JSON: ErrorCode, ErrorDetails, LogResult) at the end.
public sealed partial class LambdaEmulator
{
    private static readonly EventStreamHeader[] s_completeHeaders =
        [new(":event-type", "InvokeComplete"), new(":content-type", "application/json"), new(":message-type", "event")];

    private async Task StreamAsync(HttpContext context, FunctionEntry function, LambdaInvocation invocation, string? logType, string executedVersion, bool truncate)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/vnd.amazon.eventstream";
        response.Headers["X-Amz-Executed-Version"] = executedVersion;
        (string Code, string Details)? error = null;
        using (var cancellation = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, context.RequestAborted))
        {
            try
            {
                // The headers go now: the caller starts reading before the first chunk.
                await response.StartAsync(cancellation.Token).ConfigureAwait(false);
                await RunStreamingAsync(function, invocation, response, cancellation.Token).ConfigureAwait(false);
            }
            catch (LambdaHandledErrorException e)
            {
                error = (e.ErrorType, e.ErrorMessage);
            }
            catch (Exception e) when (!cancellation.IsCancellationRequested)
            {
                error = (e.GetType().Name, e.Message);
            }
            catch (Exception)
            {
                // The caller went away or the emulator is stopping: no one to answer.
            }
        }
        if (context.RequestAborted.IsCancellationRequested)
        {
            Counters.ClientDisconnected();
            return;
        }
        if (_stopping.IsCancellationRequested)
        {
            context.Abort();
            return;
        }
        byte[] complete = EventStreamEncoder.Encode(s_completeHeaders, InvokeCompleteBody(error, logType == "Tail" ? invocation.LogTailBase64() : null));
        // A truncated stream ends (cleanly, as far as HTTP goes) in the middle of its InvokeComplete event.
        await response.Body.WriteAsync(truncate ? complete.AsMemory(0, complete.Length / 2) : complete, context.RequestAborted).ConfigureAwait(false);
    }

    // Either kind of function: a buffered one's answer is sent as one chunk.
    private static async Task RunStreamingAsync(FunctionEntry function, LambdaInvocation invocation, HttpResponse response, CancellationToken cancellationToken)
    {
        var stream = LambdaResponseStream.Streaming(response.BodyWriter, cancellationToken);
        try
        {
            if (function.StreamingHandler is { } streaming)
            {
                await streaming(invocation, stream, cancellationToken).ConfigureAwait(false);
                return;
            }
            byte[] answer = await function.Handler!(invocation, cancellationToken).ConfigureAwait(false) ?? s_null;
            await stream.WriteAsync(answer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            stream.Completed = true;
        }
    }

    private static byte[] InvokeCompleteBody((string Code, string Details)? error, string? logResult)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer, s_jsonOptions))
        {
            json.WriteStartObject();
            if (error is { } e)
            {
                json.WriteString("ErrorCode", e.Code);
                json.WriteString("ErrorDetails", e.Details);
            }
            if (logResult is not null) json.WriteString("LogResult", logResult);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
