using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SigV4Lite.Bench;

/// <summary>
/// Issue 10's fast loopback Lambda mock: a minimal HTTP/1.1 server on raw sockets (<c>--lambda-mock</c>, a process of
/// its own) that answers every request with the same small JSON body and the headers Lambda sends with a synchronous
/// answer. It reads a request's head up to the blank line and skips <c>Content-Length</c> bytes of body: no routing,
/// no signature check, keep-alive, pipelining answered in one send. So it spends far less CPU per call than the
/// project's emulator (Kestrel, routing, JSON echo), and the client's own cost decides the throughput.
/// </summary>
internal static class LambdaMock
{
    public const string Body = "{\"statusCode\":200,\"body\":\"hello from the mock\",\"count\":42}";

    // What Lambda sends with a synchronous answer, less Connection/trace headers: same for every client measured.
    private static readonly byte[] Response = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\n" +
        "Date: Mon, 30 Nov 2026 10:00:00 GMT\r\n" +
        "Content-Type: application/json\r\n" +
        $"Content-Length: {Body.Length}\r\n" +
        "x-amzn-RequestId: 8f2b5a8e-2d7c-4b51-9f3e-6f1d2c3b4a59\r\n" +
        "X-Amz-Executed-Version: $LATEST\r\n" +
        "\r\n" + Body);

    public const string ListeningLine = "Lambda mock listening on ";

    /// <summary>Serves until the process is killed.</summary>
    public static int Serve(TextWriter output)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4096);
        output.WriteLine($"{ListeningLine}http://127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}/");
        output.Flush();
        while (true)
        {
            var connection = listener.Accept();
            connection.NoDelay = true;
            _ = Task.Run(() => ServeConnectionAsync(connection));
        }
    }

    private static async Task ServeConnectionAsync(Socket socket)
    {
        byte[] buffer = new byte[16 * 1024];
        byte[] answers = Response;
        int filled = 0;
        try
        {
            while (true)
            {
                if (filled == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).ConfigureAwait(false);
                if (read == 0) break;
                filled += read;
                int consumed = 0, requests = 0;
                while (TryReadRequest(buffer.AsSpan(consumed, filled - consumed), out int length))
                {
                    consumed += length;
                    requests++;
                }
                if (requests > 0)
                {
                    if (answers.Length != requests * Response.Length) answers = Repeat(requests);
                    await socket.SendAsync(answers, SocketFlags.None).ConfigureAwait(false);
                }
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
            }
        }
        catch (SocketException) { } // the client went away
        finally
        {
            socket.Dispose();
        }
    }

    private static byte[] Repeat(int count)
    {
        var all = new byte[count * Response.Length];
        for (int i = 0; i < count; i++) Response.CopyTo(all, i * Response.Length);
        return all;
    }

    // A whole request (head and Content-Length bytes of body) at the start of the data: its length. Lines are found
    // with the vectorized IndexOf, as a real server's parser does, so that a longer head (a signed request's, 336 B
    // against 104 B) costs the mock little more: a byte-by-byte scan for Content-Length cost about 1 ns a byte, 0.3 µs
    // more a signed request, which measured the mock rather than the client.
    private static bool TryReadRequest(ReadOnlySpan<byte> data, out int length)
    {
        length = 0;
        int end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0) return false;
        int contentLength = ContentLength(data[..(end + 2)]);
        if (data.Length < end + 4 + contentLength) return false;
        length = end + 4 + contentLength;
        return true;
    }

    // The Content-Length of a head whose every line ends with CRLF; 0 when it has none.
    private static int ContentLength(ReadOnlySpan<byte> head)
    {
        while (head.Length > 0)
        {
            int lineEnd = head.IndexOf("\r\n"u8);
            var line = head[..lineEnd];
            head = head[(lineEnd + 2)..];
            if (line.Length <= 15 || (line[0] | 0x20) != 'c' || !Ascii.EqualsIgnoreCase(line[..15], "content-length:"u8)) continue;
            int value = 0;
            foreach (byte b in line[15..])
                if (b is >= (byte)'0' and <= (byte)'9') value = value * 10 + (b - '0');
            return value;
        }
        return 0;
    }
}

/// <summary>The mock as a process of its own (this program again, <c>--lambda-mock</c>), killed on dispose or exit.</summary>
internal sealed class LambdaMockProcess : IDisposable
{
    private readonly Process _process;

    private LambdaMockProcess(Process process, Uri endpoint)
    {
        _process = process;
        Endpoint = endpoint;
    }

    public Uri Endpoint { get; }

    public int ProcessId => _process.Id;

    /// <summary>The environment variable that hands a running mock to BenchmarkDotNet's benchmark processes.</summary>
    public const string SharedUrlVariable = "SIGV4LITE_LAMBDA_MOCK_URL";

    public static LambdaMockProcess Start()
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Under `dotnet SigV4Lite.Bench.dll` (BenchmarkDotNet's processes) the process is dotnet itself: give it the program.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(typeof(LambdaMock).Assembly.Location);
        else if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) != "SigV4Lite.Bench")
        {
            // A BenchmarkDotNet child has its own apphost name: run the assembly with dotnet.
            start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(typeof(LambdaMock).Assembly.Location);
        }
        start.ArgumentList.Add("--lambda-mock");
        // GC settings given for the measured process are not the mock's.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("DOTNET_GC", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        var process = Process.Start(start) ?? throw new InvalidOperationException("The mock did not start.");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => EmulatorProcess.Kill(process);
        string? line = process.StandardOutput.ReadLine();
        if (line is null || !line.StartsWith(LambdaMock.ListeningLine, StringComparison.Ordinal))
        {
            string error = process.StandardError.ReadToEnd();
            EmulatorProcess.Kill(process);
            throw new InvalidOperationException($"The Lambda mock did not start: first line '{line}', stderr: {error}");
        }
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return new LambdaMockProcess(process, new Uri(line[LambdaMock.ListeningLine.Length..].Trim()));
    }


    public void Dispose()
    {
        EmulatorProcess.Kill(_process);
        _process.Dispose();
    }
}
