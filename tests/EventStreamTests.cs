using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;

namespace SigV4Lite.Tests;

/// <summary>The event-stream reader and encoder: the public AWS test messages, round trips across every way of
/// splitting the bytes into reads, truncation and corruption anywhere, the limits, and the CRC32.</summary>
public class EventStreamTests
{
    private static readonly string DataFolder = Path.Combine(TestContext.CurrentContext.TestDirectory, "TestData", "event-stream");

    public static IEnumerable<TestCaseData> ValidCases() => Cases("valid");

    public static IEnumerable<TestCaseData> InvalidCases() => Cases("invalid");

    private static IEnumerable<TestCaseData> Cases(string kind)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(DataFolder, "cases.json")));
        foreach (var item in json.RootElement.GetProperty(kind).EnumerateArray())
            yield return new TestCaseData(item.Clone()).SetArgDisplayNames(item.GetProperty("file").GetString()!);
    }

    [TestCaseSource(nameof(ValidCases))]
    public async Task ValidMessageDecodesToItsHeadersAndPayload(JsonElement expected)
    {
        byte[] bytes = ReadCase(expected);
        foreach (int readSize in new[] { 1, 5, bytes.Length })
        {
            await using var reader = new EventStreamReader(new ChunkedStream(bytes, _ => readSize));
            var message = await reader.ReadAsync() ?? throw new AssertionException("no message");
            AssertHeaders(message.Headers, expected.GetProperty("headers"));
            Assert.That(Encoding.UTF8.GetString(message.Payload.Span), Is.EqualTo(expected.GetProperty("payload").GetString()));
            Assert.That(await reader.ReadAsync(), Is.Null, "the stream ends after the message");
            Assert.That(reader.Position, Is.EqualTo(bytes.Length));
            Assert.That(message.Encode(), Is.EqualTo(bytes), "re-encoding gives the same bytes");
        }
    }

    [Test]
    public void EncoderWritesTheSuiteMessageWithEveryHeaderType()
    {
        var bytes = EventStreamEncoder.Encode(
        [
            new("true", EventStreamHeaderValue.FromBoolean(true)),
            new("false", EventStreamHeaderValue.FromBoolean(false)),
            new("byte", EventStreamHeaderValue.FromSByte(50)),
            new("short", EventStreamHeaderValue.FromInt16(20_000)),
            new("int", EventStreamHeaderValue.FromInt32(500_000)),
            new("long", EventStreamHeaderValue.FromInt64(50_000_000_000)),
            new("bytes", EventStreamHeaderValue.FromBytes("some bytes"u8.ToArray())),
            new("str", "some str"),
            new("time", EventStreamHeaderValue.FromTimestamp(DateTimeOffset.FromUnixTimeSeconds(5_000_000))),
            new("uuid", EventStreamHeaderValue.FromUuid(Guid.Parse("b79bc914-de21-4e13-b8b2-bc47e85b7f0b"))),
        ], "some payload"u8);
        Assert.That(bytes, Is.EqualTo(File.ReadAllBytes(Path.Combine(DataFolder, "smithy-rs", "valid_with_all_headers_and_payload"))));
    }

    [TestCaseSource(nameof(InvalidCases))]
    public async Task InvalidMessageIsTheRightTypedError(JsonElement expected)
    {
        byte[] bytes = ReadCase(expected);
        var kind = Enum.Parse<EventStreamErrorKind>(expected.GetProperty("error").GetString()!);
        foreach (int readSize in new[] { 1, bytes.Length })
        {
            await using var reader = new EventStreamReader(new ChunkedStream(bytes, _ => readSize));
            var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync());
            Assert.That(e!.Kind, Is.EqualTo(kind), e.Message);
            Assert.That(e.Offset, Is.EqualTo(0));
            Assert.That(e.Message, Does.Contain(expected.GetProperty("says").GetString()).And.Contain("byte offset 0"));
            var again = Assert.ThrowsAsync<InvalidOperationException>(async () => await reader.ReadAsync());
            Assert.That(again!.Message, Does.Contain("cannot go on"));
        }
    }

    [Test]
    public async Task RandomMessagesRoundTripAcrossEverySplitOfTheBytes()
    {
        var random = new Random(11);
        var messages = Enumerable.Range(0, 40).Select(i => RandomMessage(random, i)).ToList();
        byte[] stream = messages.SelectMany(m => EventStreamEncoder.Encode(m.Headers, m.Payload)).ToArray();
        var splits = new Dictionary<string, Func<int, int>>
        {
            ["1 byte at a time"] = _ => 1,
            ["3 bytes"] = _ => 3,
            ["7 bytes"] = _ => 7,
            ["13 bytes"] = _ => 13,
            ["4,093 bytes"] = _ => 4093,
            ["65,537 bytes"] = _ => 65537,
            ["whole"] = _ => stream.Length,
            ["random 1 to 100,000"] = n => new Random(n).Next(1, 100_000),
        };
        foreach (var (name, split) in splits)
        {
            await using var reader = new EventStreamReader(new ChunkedStream(stream, split));
            int index = 0;
            await foreach (var message in reader.ReadAllAsync())
            {
                var expected = messages[index++];
                Assert.That(message.Payload.ToArray(), Is.EqualTo(expected.Payload), $"{name}: payload of message {index}");
                Assert.That(message.Headers.Select(h => (h.Name, h.Value)), Is.EqualTo(expected.Headers.Select(h => (h.Name, h.Value))), $"{name}: headers of message {index}");
            }
            Assert.That(index, Is.EqualTo(messages.Count), name);
            Assert.That(reader.Position, Is.EqualTo(stream.Length), name);
        }
    }

    [Test]
    public async Task StreamCutAnywhereIsTruncatedOrEndsAtAMessageBoundary()
    {
        var random = new Random(5);
        var encoded = Enumerable.Range(0, 3).Select(i => EventStreamEncoder.Encode(RandomMessage(random, i, maxPayload: 300).Headers, RandomMessage(random, i, maxPayload: 300).Payload)).ToList();
        byte[] stream = encoded.SelectMany(m => m).ToArray();
        var boundaries = new HashSet<int> { 0 };
        int at = 0;
        foreach (var m in encoded) boundaries.Add(at += m.Length);
        for (int cut = 0; cut < stream.Length; cut++)
        {
            await using var reader = new EventStreamReader(new ChunkedStream(stream.AsSpan(0, cut).ToArray(), _ => 7));
            int read = 0;
            if (boundaries.Contains(cut))
            {
                await foreach (var _ in reader.ReadAllAsync()) read++;
                Assert.That(read, Is.EqualTo(boundaries.Count(b => b > 0 && b <= cut)), $"cut at {cut}");
                continue;
            }
            var e = Assert.ThrowsAsync<EventStreamException>(async () => { await foreach (var _ in reader.ReadAllAsync()) read++; }, $"cut at {cut}");
            Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.Truncated), $"cut at {cut}: {e.Message}");
            Assert.That(e.Message, Does.Contain("ended in the middle of a message"));
            Assert.That(e.Offset, Is.EqualTo(boundaries.Where(b => b < cut).Max()), $"cut at {cut}");
        }
    }

    [Test]
    public async Task EveryFlippedBitIsATypedError()
    {
        byte[] message = EventStreamEncoder.Encode([new(":event-type", "PayloadChunk"), new("n", EventStreamHeaderValue.FromInt64(42))], "payload bytes"u8);
        for (int bit = 0; bit < message.Length * 8; bit++)
        {
            byte[] damaged = (byte[])message.Clone();
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            await using var reader = new EventStreamReader(new MemoryStream(damaged));
            var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync(), $"bit {bit}");
            var expected = bit < 96 ? EventStreamErrorKind.PreludeChecksumMismatch : EventStreamErrorKind.MessageChecksumMismatch;
            if (e!.Kind == EventStreamErrorKind.InvalidHeader)
                Assert.That(e.Message, Does.Contain("does not match either"), $"bit {bit}: a malformed header found with a damaged CRC says so");
            else
                Assert.That(e.Kind, Is.EqualTo(expected), $"bit {bit}: {e.Message}");
        }
    }

    [Test]
    public async Task MessageOverSixteenMebibytesIsRefusedBeforeItIsRead()
    {
        byte[] prelude = Prelude(EventStreamMessage.MaxLength + 1, 0);
        await using var reader = new EventStreamReader(new ChunkedStream(prelude, _ => 12));
        var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync());
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.InvalidMessageLength));
        Assert.That(e.Message, Does.Contain("16777217").And.Contain("16 MiB"));
    }

    [Test]
    public async Task HeadersOver128KibibytesAreRefused()
    {
        byte[] prelude = Prelude(1024 * 1024, EventStreamMessage.MaxHeadersLength + 1);
        await using var reader = new EventStreamReader(new MemoryStream(prelude));
        var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync());
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.InvalidHeadersLength));
        Assert.That(e.Message, Does.Contain("131073").And.Contain("128 KiB"));
    }

    [Test]
    public async Task MessageOfSixteenMebibytesIsRead()
    {
        byte[] payload = new byte[EventStreamMessage.MaxLength - EventStreamMessage.MinLength];
        new Random(3).NextBytes(payload);
        byte[] bytes = EventStreamEncoder.Encode([], payload);
        await using var reader = new EventStreamReader(new ChunkedStream(bytes, n => 1 + n * 7919 % 70_000));
        var message = await reader.ReadAsync();
        Assert.That(message!.Value.Payload.Span.SequenceEqual(payload), Is.True);
    }

    [TestCase(new byte[] { 0 }, "a header name is empty")]
    [TestCase(new byte[] { 2, 0xC3, 0x28, 0 }, "header name is not valid UTF-8")]
    [TestCase(new byte[] { 1, (byte)'s', 7, 0, 2, 0xC3, 0x28 }, "string value of header 's' is not valid UTF-8")]
    [TestCase(new byte[] { 1, (byte)'i', 4, 0, 0 }, "value of header 'i' (a 32-bit integer, 4 bytes) runs past the end of the headers (2 bytes left)")]
    [TestCase(new byte[] { 1, (byte)'b', 6, 0 }, "value of header 'b' (bytes, its 2-byte length)")]
    public async Task MalformedHeaderWithAValidCrcIsNamed(byte[] headers, string says)
    {
        byte[] bytes = WithValidCrcs(headers, "x"u8.ToArray());
        await using var reader = new EventStreamReader(new MemoryStream(bytes));
        var e = Assert.ThrowsAsync<EventStreamException>(async () => await reader.ReadAsync());
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.InvalidHeader));
        Assert.That(e.Message, Does.Contain(says).And.EndWith(")."), "a CRC that matches is not blamed");
    }

    [Test]
    public void ExceptionMessageIsThrownWithItsTypeAndMessage()
    {
        var message = Decode(EventStreamEncoder.Encode(
            [new(":message-type", "exception"), new(":exception-type", "ThrottlingException"), new(":content-type", "application/json")],
            """{"message":"Too many tokens, please wait."}"""u8));
        Assert.That(message.MessageType, Is.EqualTo("exception"));
        var e = Assert.Throws<EventStreamErrorException>(message.EnsureEvent);
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.ExceptionMessage));
        Assert.That(e.ErrorCode, Is.EqualTo("ThrottlingException"));
        Assert.That(e.ErrorMessage, Is.EqualTo("Too many tokens, please wait."));
        Assert.That(e.Message, Does.Contain("ThrottlingException: Too many tokens"));
        Assert.That(e, Is.InstanceOf<EventStreamException>());
    }

    [Test]
    public void ErrorMessageIsThrownWithItsCodeAndMessage()
    {
        var message = Decode(EventStreamEncoder.Encode(
            [new(":message-type", "error"), new(":error-code", "InternalFailure"), new(":error-message", "try again")], default));
        var e = Assert.Throws<EventStreamErrorException>(message.EnsureEvent);
        Assert.That(e!.Kind, Is.EqualTo(EventStreamErrorKind.ErrorMessage));
        Assert.That((e.ErrorCode, e.ErrorMessage), Is.EqualTo(("InternalFailure", "try again")));
    }

    [Test]
    public void EventMessageHasItsTypeWithoutMakingStrings()
    {
        var message = Decode(EventStreamEncoder.Encode(
            [new(":message-type", "event"), new(":event-type", "PayloadChunk"), new(":content-type", "application/octet-stream")], "abc"u8));
        Assert.DoesNotThrow(message.EnsureEvent);
        Assert.That(message.IsEvent("PayloadChunk"), Is.True);
        Assert.That(message.IsEvent("InvokeComplete"), Is.False);
        Assert.That((message.MessageType, message.EventType, message.ContentType), Is.EqualTo(("event", "PayloadChunk", "application/octet-stream")));
        Assert.That(ReferenceEquals(message.MessageType, "event"), Is.True, "the well-known message types are not new strings");
        Assert.That(message.Headers.TryGetValue(":event-type"u8, out var value) && value.StringEquals("PayloadChunk"u8), Is.True);
        Assert.That(message.ToString(), Is.EqualTo("EventStreamMessage { MessageType = event, EventType = PayloadChunk, Payload = 3 bytes }"));
    }

    [Test]
    public void ReadingAHeaderAsAnotherTypeSaysWhatItIs()
    {
        var value = EventStreamHeaderValue.FromString("x");
        var e = Assert.Throws<InvalidOperationException>(() => value.AsInt32());
        Assert.That(e!.Message, Does.Contain("is a string, not a 32-bit integer"));
        Assert.That(EventStreamHeaderValue.FromSByte(-5).AsInt64(), Is.EqualTo(-5), "integers widen");
        Assert.That(EventStreamHeaderValue.FromTimestamp(DateTimeOffset.FromUnixTimeMilliseconds(1234)).AsInt64(), Is.EqualTo(1234));
        var outOfRange = Assert.Throws<InvalidOperationException>(() => EventStreamHeaderValue.FromInt64(long.MaxValue).AsTimestamp());
        Assert.That(outOfRange!.Message, Does.Contain("not a timestamp"));
    }

    [Test]
    public void EncoderRefusesWhatNoReaderAccepts()
    {
        var empty = Assert.Throws<ArgumentException>(() => new EventStreamHeader("", "x"));
        Assert.That(empty!.Message, Does.Contain("1 to 255 bytes"));
        var longName = Assert.Throws<ArgumentException>(() => new EventStreamHeader(new string('n', 256), "x"));
        Assert.That(longName!.Message, Does.Contain("is 256"));
        var longValue = Assert.Throws<ArgumentOutOfRangeException>(() => EventStreamHeaderValue.FromString(new string('v', 32_768)));
        Assert.That(longValue!.Message, Does.Contain("at most 32767 bytes"));
        var tooLarge = Assert.Throws<ArgumentOutOfRangeException>(() => EventStreamEncoder.GetEncodedLength([], EventStreamMessage.MaxLength));
        Assert.That(tooLarge!.Message, Does.Contain("16 MiB").And.Contain("several"));
        var manyHeaders = Enumerable.Range(0, 5).Select(i => new EventStreamHeader("h" + i, new string('v', 30_000))).ToArray();
        var tooManyHeaders = Assert.Throws<ArgumentOutOfRangeException>(() => EventStreamEncoder.Encode(manyHeaders, default));
        Assert.That(tooManyHeaders!.Message, Does.Contain("at most 131072"));
        var small = Assert.Throws<ArgumentException>(() => EventStreamEncoder.Encode([], "abc"u8, new byte[10]));
        Assert.That(small!.Message, Does.Contain("holds 10 bytes; the message needs 19"));
    }

    [Test]
    public async Task ReadIsCancelledWhileTheStreamWaits()
    {
        var pipe = new Pipe();
        await using var reader = new EventStreamReader(pipe.Reader.AsStream());
        using var cancel = new CancellationTokenSource();
        var read = reader.ReadAsync(cancel.Token).AsTask();
        await Task.Delay(50);
        Assert.That(read.IsCompleted, Is.False, "no message yet");
        cancel.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await read.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public async Task SecondReadWhileOneIsUnderWayIsRefused()
    {
        var pipe = new Pipe();
        await using var reader = new EventStreamReader(pipe.Reader.AsStream());
        var first = reader.ReadAsync().AsTask();
        var e = Assert.Throws<InvalidOperationException>(() => reader.ReadAsync());
        Assert.That(e!.Message, Does.Contain("one at a time"));
        await pipe.Writer.WriteAsync(EventStreamEncoder.Encode([new("a", "b")], "c"u8));
        await pipe.Writer.CompleteAsync();
        Assert.That((await first)!.Value.Headers.GetString("a"), Is.EqualTo("b"));
    }

    [Test]
    public void Crc32HasTheKnownValues()
    {
        var known = new (string Text, uint Crc)[]
        {
            ("", 0), ("a", 0xE8B7BE43), ("123456789", 0xCBF43926), ("The quick brown fox jumps over the lazy dog", 0x414FA339),
        };
        foreach (var (text, crc) in known)
        {
            byte[] bytes = Encoding.ASCII.GetBytes(text);
            Assert.That(EventStreamCrc32.Compute(bytes), Is.EqualTo(crc), text);
            Assert.That(EventStreamCrc32.ComputeScalar(bytes), Is.EqualTo(crc), text);
        }
        // 1 MiB of zeros and of 0xFF, as zlib's crc32 computes them.
        Assert.That(EventStreamCrc32.Compute(new byte[1 << 20]), Is.EqualTo(0xA738EA1C));
        Assert.That(EventStreamCrc32.Compute(Enumerable.Repeat((byte)0xFF, 1 << 20).ToArray()), Is.EqualTo(0x956BAC74u));
    }

    [Test]
    public void Crc32FastPathsAgreeWithTheTablesAtEveryLengthAndSplit()
    {
        var random = new Random(7);
        byte[] data = new byte[70_000];
        random.NextBytes(data);
        foreach (int length in Enumerable.Range(0, 300).Concat([1023, 1024, 1025, 4096, 65_536, 70_000]))
        {
            var slice = data.AsSpan(0, length);
            uint expected = EventStreamCrc32.ComputeScalar(slice);
            Assert.That(EventStreamCrc32.Compute(slice), Is.EqualTo(expected), $"length {length}");
            if (EventStreamCrc32.HasPclmul) Assert.That(EventStreamCrc32.ComputePclmul(slice), Is.EqualTo(expected), $"PCLMULQDQ, length {length}");
            int split = random.Next(length + 1);
            Assert.That(EventStreamCrc32.Update(EventStreamCrc32.Compute(slice[..split]), slice[split..]), Is.EqualTo(expected), $"length {length} split at {split}");
        }
    }

    internal static (EventStreamHeader[] Headers, byte[] Payload) RandomMessage(Random random, int index, int maxPayload = 70_000)
    {
        var headers = new List<EventStreamHeader> { new(":message-type", "event"), new(":event-type", "Event" + index) };
        int count = random.Next(0, 12);
        for (int i = 0; i < count; i++)
        {
            string name = "h" + i + new string('x', random.Next(0, 40));
            headers.Add(new(name, (EventStreamHeaderType)random.Next(10) switch
            {
                EventStreamHeaderType.BoolTrue => EventStreamHeaderValue.FromBoolean(true),
                EventStreamHeaderType.BoolFalse => EventStreamHeaderValue.FromBoolean(false),
                EventStreamHeaderType.Byte => EventStreamHeaderValue.FromSByte((sbyte)random.Next(-128, 128)),
                EventStreamHeaderType.Int16 => EventStreamHeaderValue.FromInt16((short)random.Next(short.MinValue, short.MaxValue)),
                EventStreamHeaderType.Int32 => EventStreamHeaderValue.FromInt32(random.Next(int.MinValue, int.MaxValue)),
                EventStreamHeaderType.Int64 => EventStreamHeaderValue.FromInt64(random.NextInt64(long.MinValue, long.MaxValue)),
                EventStreamHeaderType.ByteArray => EventStreamHeaderValue.FromBytes(RandomBytes(random, random.Next(0, 300))),
                EventStreamHeaderType.String => EventStreamHeaderValue.FromString("välue ✓ " + random.Next()),
                EventStreamHeaderType.Timestamp => EventStreamHeaderValue.FromTimestamp(DateTimeOffset.FromUnixTimeMilliseconds(random.NextInt64(0, 4_000_000_000_000))),
                _ => EventStreamHeaderValue.FromUuid(Guid.NewGuid()),
            }));
        }
        int payloadLength = random.Next(4) == 0 ? 0 : random.Next(0, maxPayload);
        return (headers.ToArray(), RandomBytes(random, payloadLength));
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] ReadCase(JsonElement item) => File.ReadAllBytes(Path.Combine(DataFolder, item.GetProperty("file").GetString()!));

    private static EventStreamMessage Decode(byte[] bytes) =>
        new EventStreamReader(new MemoryStream(bytes)).ReadAsync().AsTask().GetAwaiter().GetResult()!.Value;

    private static byte[] Prelude(int total, int headers)
    {
        byte[] prelude = new byte[12];
        BinaryPrimitives.WriteInt32BigEndian(prelude, total);
        BinaryPrimitives.WriteInt32BigEndian(prelude.AsSpan(4), headers);
        BinaryPrimitives.WriteUInt32BigEndian(prelude.AsSpan(8), EventStreamCrc32.Compute(prelude.AsSpan(0, 8)));
        return prelude;
    }

    // A message with the given raw header bytes and both CRCs right.
    private static byte[] WithValidCrcs(byte[] headers, byte[] payload)
    {
        byte[] message = new byte[16 + headers.Length + payload.Length];
        Prelude(message.Length, headers.Length).CopyTo(message, 0);
        headers.CopyTo(message, 12);
        payload.CopyTo(message, 12 + headers.Length);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(message.Length - 4), EventStreamCrc32.Compute(message.AsSpan(0, message.Length - 4)));
        return message;
    }

    private static void AssertHeaders(EventStreamHeaders headers, JsonElement expected)
    {
        var actual = headers.ToList();
        Assert.That(actual.Count, Is.EqualTo(expected.GetArrayLength()));
        Assert.That(headers.Count, Is.EqualTo(actual.Count));
        int i = 0;
        foreach (var item in expected.EnumerateArray())
        {
            var header = actual[i++];
            string name = item.GetProperty("name").GetString()!;
            var type = Enum.Parse<EventStreamHeaderType>(item.GetProperty("type").GetString()!);
            var value = item.GetProperty("value");
            Assert.That(header.Name, Is.EqualTo(name));
            Assert.That(header.Value.Type, Is.EqualTo(type), name);
            Assert.That(headers.TryGetValue(name, out var found) && found == header.Value, Is.True, $"{name} is found by name");
            object actualValue = type switch
            {
                EventStreamHeaderType.BoolTrue or EventStreamHeaderType.BoolFalse => header.Value.AsBoolean(),
                EventStreamHeaderType.ByteArray => Encoding.UTF8.GetString(header.Value.AsBytes().Span),
                EventStreamHeaderType.String => header.Value.AsString(),
                EventStreamHeaderType.Uuid => header.Value.AsUuid().ToString(),
                EventStreamHeaderType.Timestamp => header.Value.AsTimestamp().ToUnixTimeMilliseconds(),
                _ => header.Value.AsInt64(),
            };
            object expectedValue = value.ValueKind switch
            {
                JsonValueKind.True or JsonValueKind.False => value.GetBoolean(),
                JsonValueKind.Number => value.GetInt64(),
                _ => value.GetString()!,
            };
            Assert.That(actualValue, Is.EqualTo(expectedValue), name);
        }
    }
}

/// <summary>A read-only stream over bytes that returns at most <c>chunk(n)</c> bytes on its n-th read, as a network
/// stream returns what has arrived; its async reads complete asynchronously now and then.</summary>
internal sealed class ChunkedStream(byte[] data, Func<int, int> chunk) : Stream
{
    private int _position;
    private int _reads;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(buffer.Length, Math.Max(1, chunk(_reads++))), data.Length - _position);
        data.AsSpan(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_reads % 5 == 4) await Task.Yield();
        return Read(buffer.Span);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
