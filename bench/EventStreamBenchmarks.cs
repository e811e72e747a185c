using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// Decoding an event stream of Lambda-shaped <c>PayloadChunk</c> messages (three headers, a 64 KiB payload) with
/// <see cref="EventStreamReader"/> from a <see cref="MemoryStream"/>: every prelude and message CRC32 checked, every
/// header validated, each message's headers and payload read into the one array handed out. One operation is one
/// message (<c>OperationsPerInvoke</c>), so Allocated is per message. Beside it the CRC32 of 64 KiB alone, folded with
/// PCLMULQDQ and with the slicing-by-8 tables.
/// </summary>
[MemoryDiagnoser]
public class EventStreamBenchmarks
{
    public const int Messages = 256;
    public const int PayloadLength = 64 * 1024;

    private readonly MemoryStream _stream = new(Encode());
    private readonly byte[] _block = new byte[PayloadLength];

    /// <summary>The stream's length: 256 messages of 65,623 bytes.</summary>
    public long StreamLength => _stream.Length;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_block);
        if (Decode() != Messages) throw new InvalidOperationException("The benchmark stream does not decode.");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "decode a 64 KiB PayloadChunk message (CRC32 checked)")]
    public int Decode()
    {
        _stream.Position = 0;
        using var reader = new EventStreamReader(_stream, leaveOpen: true);
        int count = 0;
        while (reader.ReadAsync().GetAwaiter().GetResult() is { } message)
            count += message.Payload.Length == PayloadLength ? 1 : 0;
        return count;
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "CRC32 of 64 KiB, PCLMULQDQ")]
    public uint Crc32Folded()
    {
        uint crc = 0;
        for (int i = 0; i < Messages; i++) crc ^= EventStreamCrc32.Compute(_block);
        return crc;
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "CRC32 of 64 KiB, slicing-by-8 tables")]
    public uint Crc32Tables()
    {
        uint crc = 0;
        for (int i = 0; i < Messages; i++) crc ^= EventStreamCrc32.ComputeScalar(_block);
        return crc;
    }

    private static byte[] Encode()
    {
        EventStreamHeader[] headers = [new(":event-type", "PayloadChunk"), new(":content-type", "application/octet-stream"), new(":message-type", "event")];
        var payload = new byte[PayloadLength];
        new Random(2).NextBytes(payload);
        var one = EventStreamEncoder.Encode(headers, payload);
        var all = new byte[one.Length * Messages];
        for (int i = 0; i < Messages; i++) one.CopyTo(all, i * one.Length);
        return all;
    }
}
