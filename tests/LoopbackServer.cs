using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SigV4Lite.Tests;

/// <summary>An HTTP/1.1 request exactly as it arrived: request line, headers in order, body (de-chunked).</summary>
internal sealed record RawRequest(string Method, string Target, List<KeyValuePair<string, string>> Headers, byte[] Body, bool Chunked)
{
    public string Path => Target.IndexOf('?') is var q and >= 0 ? Target[..q] : Target;

    public string Query => Target.IndexOf('?') is var q and >= 0 ? Target[(q + 1)..] : "";

    public string[] Values(string name) =>
        Headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).ToArray();

    public string? Header(string name) => Values(name) is [var only] ? only : null;
}

/// <summary>
/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 (port 0) that records the raw requests it receives
/// and answers each with 200 and a small body (or what the responder given says), then closes the connection.
/// </summary>
internal sealed class LoopbackServer : IAsyncDisposable
{
    private const string Ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<RawRequest, string> _respond;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _disposed;

    public ConcurrentQueue<RawRequest> Requests { get; } = new();

    public ConcurrentQueue<Exception> Errors { get; } = new();

    public int Port { get; }

    /// <summary>Starts the server.</summary>
    /// <param name="respond">The response to a request, status line to body (Connection: close); null answers 200 "ok".</param>
    public LoopbackServer(Func<RawRequest, string>? respond = null)
    {
        _respond = respond ?? (_ => Ok);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public string BaseAddress => $"http://127.0.0.1:{Port}";

    /// <summary>A redirect response with this status and Location.</summary>
    public static string Redirect(int status, string location) =>
        $"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = ServeAsync(client);
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
        catch (SocketException) when (_stop.IsCancellationRequested) { } // Stop() aborted the accept before the token did
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                var stream = client.GetStream();
                var reader = new Reader(stream);
                var request = await ReadRequestAsync(reader, timeout.Token);
                Requests.Enqueue(request);
                await stream.WriteAsync(Encoding.Latin1.GetBytes(_respond(request)), timeout.Token);
            }
            catch (Exception e)
            {
                Errors.Enqueue(e);
            }
        }
    }

    private static async Task<RawRequest> ReadRequestAsync(Reader reader, CancellationToken cancellationToken)
    {
        string requestLine = Encoding.Latin1.GetString(await reader.ReadLineAsync(cancellationToken));
        var parts = requestLine.Split(' ');
        if (parts.Length != 3 || parts[2] != "HTTP/1.1") throw new InvalidDataException($"Bad request line '{requestLine}'.");

        var headers = new List<KeyValuePair<string, string>>();
        while (true)
        {
            string line = Encoding.Latin1.GetString(await reader.ReadLineAsync(cancellationToken));
            if (line.Length == 0) break;
            int colon = line.IndexOf(':');
            if (colon <= 0 || line[0] is ' ' or '\t') throw new InvalidDataException($"Bad header line '{line}'.");
            headers.Add(new(line[..colon], line[(colon + 1)..].Trim(' ', '\t')));
        }

        string? transferEncoding = headers.Where(h => h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).SingleOrDefault();
        string? contentLength = headers.Where(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).SingleOrDefault();
        bool chunked = transferEncoding is not null && transferEncoding.Equals("chunked", StringComparison.OrdinalIgnoreCase);
        var body = new MemoryStream();
        if (chunked)
        {
            while (true)
            {
                string sizeLine = Encoding.Latin1.GetString(await reader.ReadLineAsync(cancellationToken));
                int size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    while ((await reader.ReadLineAsync(cancellationToken)).Length > 0) { } // trailers
                    break;
                }
                body.Write(await reader.ReadExactlyAsync(size, cancellationToken));
                if ((await reader.ReadLineAsync(cancellationToken)).Length != 0) throw new InvalidDataException("Chunk not followed by CRLF.");
            }
        }
        else if (contentLength is not null)
            body.Write(await reader.ReadExactlyAsync(int.Parse(contentLength, CultureInfo.InvariantCulture), cancellationToken));

        return new RawRequest(parts[0], parts[1], headers, body.ToArray(), chunked);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }

    // Buffered reads of CRLF-terminated lines and exact byte counts.
    private sealed class Reader(NetworkStream stream)
    {
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _start, _end;

        private async Task FillAsync(CancellationToken cancellationToken)
        {
            if (_start == _end) _start = _end = 0;
            if (_end == _buffer.Length)
            {
                if (_start == 0) throw new InvalidDataException("Line too long.");
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            int n = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (n == 0) throw new EndOfStreamException("The client closed the connection mid-request.");
            _end += n;
        }

        public async Task<byte[]> ReadLineAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                int lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (lf >= 0)
                {
                    if (lf == _start || _buffer[lf - 1] != '\r') throw new InvalidDataException("Bare LF in the request head.");
                    var line = _buffer.AsSpan(_start, lf - 1 - _start).ToArray();
                    _start = lf + 1;
                    return line;
                }
                await FillAsync(cancellationToken);
            }
        }

        public async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
        {
            var result = new byte[count];
            int done = 0;
            while (done < count)
            {
                if (_start == _end) await FillAsync(cancellationToken);
                int n = Math.Min(count - done, _end - _start);
                Array.Copy(_buffer, _start, result, done, n);
                _start += n;
                done += n;
            }
            return result;
        }
    }
}
