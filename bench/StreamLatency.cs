using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using SigV4Lite.Emulator;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--stream-latency [N]</c>: how long a Lambda response stream's first chunk takes to reach the caller. The emulator
/// runs in process (signatures not verified); its function writes one chunk holding the <see cref="Stopwatch"/> time
/// of the write. The client's connections are wrapped (SocketsHttpHandler.ConnectCallback) to note when each socket
/// read returns bytes. For each of N sequential invocations through LambdaClient.InvokeWithResponseStreamAsync (one
/// connection, kept alive) it reports the time from the socket read that brought the chunk to the chunk handed to the
/// caller by LambdaStreamingResponse.ReadChunksAsync (the target: under 1 ms), and from the function's write to the
/// caller.
/// </summary>
internal static class StreamLatency
{
    public static int Run(TextWriter output, int count) => RunAsync(output, count).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(TextWriter output, int count)
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { VerifySignatures = false });
        emulator.AddStreamingFunction("first-chunk", (invocation, response, cancellationToken) =>
        {
            var chunk = new byte[128];
            BinaryPrimitives.WriteInt64LittleEndian(chunk, Stopwatch.GetTimestamp());
            return response.WriteAsync(chunk, cancellationToken);
        });
        var clock = new SocketReadClock();
        using var handler = new SocketsHttpHandler { ConnectCallback = clock.ConnectAsync };
        using var lambda = new LambdaClient(new AwsClientOptions
        {
            Endpoint = emulator.Endpoint,
            Region = emulator.Options.Region,
            Credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            HttpHandler = handler,
        });

        for (int i = 0; i < 500; i++) await OneAsync(lambda, clock); // JIT and connection warm-up
        var fromSocket = new double[count];
        var fromWrite = new double[count];
        for (int i = 0; i < count; i++) (fromSocket[i], fromWrite[i]) = await OneAsync(lambda, clock);

        output.WriteLine($"First chunk of {count} sequential InvokeWithResponseStream calls (in-process emulator, one kept-alive connection), microseconds:");
        output.WriteLine("| from | p50 | p90 | p99 | max |");
        output.WriteLine("| --- | ---: | ---: | ---: | ---: |");
        Print(output, "socket read that brought the chunk, to the chunk handed to the caller", fromSocket);
        Print(output, "function's write, to the chunk handed to the caller", fromWrite);
        return fromSocket.Order().ElementAt(count * 99 / 100) < 1000 ? 0 : 1;
    }

    private static readonly SigV4Lite.LambdaRequest FirstChunk = new("first-chunk", "{}"u8.ToArray());

    private static async Task<(double FromSocket, double FromWrite)> OneAsync(LambdaClient lambda, SocketReadClock clock)
    {
        await using var response = await lambda.InvokeWithResponseStreamAsync(FirstChunk).ConfigureAwait(false);
        (double, double) result = default;
        await foreach (var chunk in response.ReadChunksAsync().ConfigureAwait(false))
        {
            long now = Stopwatch.GetTimestamp();
            long written = BinaryPrimitives.ReadInt64LittleEndian(chunk.Span);
            result = (Stopwatch.GetElapsedTime(clock.LastRead, now).TotalMicroseconds, Stopwatch.GetElapsedTime(written, now).TotalMicroseconds);
        }
        return result;
    }

    private static void Print(TextWriter output, string what, double[] values)
    {
        var sorted = values.Order().ToArray();
        double At(double fraction) => sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * fraction))];
        output.WriteLine($"| {what} | {At(0.5):F1} | {At(0.9):F1} | {At(0.99):F1} | {sorted[^1]:F1} |");
    }

    // Notes the time of the last socket read that returned bytes (the calls are sequential: one is enough).
    private sealed class SocketReadClock
    {
        private long _lastRead;

        public long LastRead => Volatile.Read(ref _lastRead);

        public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                return new TimedStream(new NetworkStream(socket, ownsSocket: true), this);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        private sealed class TimedStream(NetworkStream inner, SocketReadClock clock) : Stream
        {
            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => true;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                int read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read > 0) Volatile.Write(ref clock._lastRead, Stopwatch.GetTimestamp());
                return read;
            }

            public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
            public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
            public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
            public override void Flush() => inner.Flush();
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();

            protected override void Dispose(bool disposing)
            {
                if (disposing) inner.Dispose();
                base.Dispose(disposing);
            }
        }
    }
}
