using System.Runtime.InteropServices;
using NUnit.Framework;

namespace SigV4Lite.Tests;

// A LambdaResponse holds the usual answer compactly (a collecting fan-out keeps one per call): every value must read
// back exactly as given, whatever it is.
public class LambdaResponseTests
{
    [TestCase("8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f")]           // a lowercase UUID: held as a Guid
    [TestCase("8F2C4C6E-2B1A-4D8E-9C3F-0A1B2C3D4E5F")]           // upper case: held as text
    [TestCase("00000000-0000-0000-0000-000000000000")]
    [TestCase("{8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f}")]
    [TestCase("0x2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f")]           // Guid's parser takes these; they would not format back
    [TestCase("+f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f")]
    [TestCase(" 8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f\t")]
    [TestCase("8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5g")]
    [TestCase("not-a-uuid")]
    [TestCase("")]
    [TestCase(null)]
    public void EveryRequestIdReadsBackAsGiven(string? requestId)
    {
        var response = new LambdaResponse("f", 200, new byte[] { 1 }, "$LATEST", requestId);
        Assert.That(response.RequestId, Is.EqualTo(requestId));
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.ExecutedVersion, Is.EqualTo("$LATEST"));
    }

    // Random UUIDs, and each with one character changed to another that a UUID's text may or may not hold: every one
    // reads back exactly, and the lowercase UUIDs among them are held without their text.
    [Test]
    public void RandomRequestIdsReadBackAsGiven()
    {
        var random = new Random(20261129);
        const string alphabet = "0123456789abcdefABCDEFgG-x+ {}";
        for (int i = 0; i < 2_000; i++)
        {
            string uuid = Guid.NewGuid().ToString("D");
            char[] changed = uuid.ToCharArray();
            changed[random.Next(changed.Length)] = alphabet[random.Next(alphabet.Length)];
            foreach (var requestId in new[] { uuid, new string(changed) })
            {
                var response = new LambdaResponse("f", 200, new byte[] { 1 }, "$LATEST", requestId);
                Assert.That(response.RequestId, Is.EqualTo(requestId));
                bool lowercaseUuid = System.Text.RegularExpressions.Regex.IsMatch(requestId, "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
                    && requestId != Guid.Empty.ToString();
                Assert.That(response.ExecutedVersion, Is.EqualTo("$LATEST"));
                Assert.That(response.IsCompact, Is.EqualTo(lowercaseUuid), requestId);
            }
        }
    }

    // Lambda's answer headers are read in one pass: each whatever its case, a repeated one as GetHeader reads it, the
    // request id from x-amzn-RequestId before x-amz-request-id.
    [Test]
    public void AnAnswersHeadersAreReadInOnePass()
    {
        using var message = new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new ByteArrayContent([0x7b, 0x7d]) };
        message.Headers.TryAddWithoutValidation("x-amz-request-id", "s3-style-id");
        message.Headers.TryAddWithoutValidation("X-AMZN-REQUESTID", "8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f");
        message.Headers.TryAddWithoutValidation("x-amz-executed-version", "7");
        message.Headers.TryAddWithoutValidation("X-Amz-Function-Error", "Unhandled");
        message.Headers.TryAddWithoutValidation("X-Amz-Function-Error", "Handled");
        message.Headers.TryAddWithoutValidation("X-Amz-Log-Result", Convert.ToBase64String("START\nEND"u8));
        var answer = new AwsResponse(message.StatusCode, new byte[] { 0x7b, 0x7d }, message.Headers, message.Content.Headers);
        var response = LambdaWire.ReadResponse("f", answer);
        Assert.That((response.RequestId, response.ExecutedVersion, response.FunctionError, response.Log),
            Is.EqualTo(("8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f", "7", "Unhandled, Handled", "START\nEND")));
        Assert.That(answer.GetHeader("X-Amz-Function-Error"), Is.EqualTo(response.FunctionError), "as GetHeader reads it");

        // A name among the content headers (a handler may put one there) is found there too.
        using var inContent = new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
        inContent.Content.Headers.TryAddWithoutValidation("X-Amz-Executed-Version", "3");
        var third = LambdaWire.ReadResponse("f", new AwsResponse(inContent.StatusCode, default, inContent.Headers, inContent.Content.Headers));
        Assert.That(third.ExecutedVersion, Is.EqualTo("3"));

        // A response built for a test (the public constructor) reads the same way.
        var built = LambdaWire.ReadResponse("f", new AwsResponse(System.Net.HttpStatusCode.OK, default,
            [new("x-amzn-requestid", "built-id"), new("X-AMZ-EXECUTED-VERSION", "$LATEST"), new("x-amz-function-error", "Handled")]));
        Assert.That((built.RequestId, built.ExecutedVersion, built.FunctionError), Is.EqualTo(("built-id", "$LATEST", "Handled")));

        using var s3Style = new HttpResponseMessage(System.Net.HttpStatusCode.OK);
        s3Style.Headers.TryAddWithoutValidation("x-amz-request-id", "s3-style-id");
        var second = LambdaWire.ReadResponse("f", new AwsResponse(s3Style.StatusCode, default, s3Style.Headers, null));
        Assert.That((second.RequestId, second.ExecutedVersion, second.FunctionError, second.Log), Is.EqualTo(("s3-style-id", (string?)null, (string?)null, (string?)null)));
    }

    // A payload that is part of an array (a fake's slice) reads back as given, as does a whole array, without a copy.
    [Test]
    public void EveryPayloadReadsBackAsGiven()
    {
        byte[] bytes = [1, 2, 3, 4, 5];
        var slice = new LambdaResponse("f", 200, bytes.AsMemory(1, 3), "$LATEST");
        Assert.That(slice.Payload.ToArray(), Is.EqualTo(new byte[] { 2, 3, 4 }));
        Assert.That(slice.StatusCode, Is.EqualTo(200));
        var whole = new LambdaResponse("f", 200, bytes, "$LATEST");
        Assert.That(MemoryMarshal.TryGetArray(whole.Payload, out var segment) && ReferenceEquals(segment.Array, bytes), "the array itself");
        Assert.That(new LambdaResponse("f", 202, default).Payload.IsEmpty);
        Assert.That(new LambdaResponse("f", 200, new byte[0].AsMemory(), "$LATEST").Payload.Length, Is.EqualTo(0));
        var fromPool = new ReadOnlyMemory<byte>(new byte[16], 0, 7);
        Assert.That(new LambdaResponse("f", 200, fromPool, "$LATEST").Payload.Length, Is.EqualTo(7));
    }

    [Test]
    public void UnusualValuesReadBackAsGiven()
    {
        var response = new LambdaResponse("arn:aws:lambda:us-east-1:123456789012:function:f", 202, ReadOnlyMemory<byte>.Empty,
            executedVersion: "7", requestId: "8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f", log: "START\nEND", functionError: "Unhandled");
        Assert.That((response.FunctionName, response.StatusCode, response.ExecutedVersion, response.RequestId, response.Log, response.FunctionError),
            Is.EqualTo(("arn:aws:lambda:us-east-1:123456789012:function:f", 202, "7", "8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f", "START\nEND", "Unhandled")));
        Assert.That(new LambdaResponse("f", 204, default).ExecutedVersion, Is.Null, "no version sent");
        Assert.That(new LambdaResponse("f", 200, default, executedVersion: null).StatusCode, Is.EqualTo(200));
    }

    // What a collecting fan-out keeps per usual answer besides its payload: one 56-byte object, no request id string.
    [Test]
    public void TheUsualAnswerIsOneSmallObject()
    {
        byte[] payload = [1, 2, 3];
        string requestId = "8f2c4c6e-2b1a-4d8e-9c3f-0a1b2c3d4e5f";
        var keep = new LambdaResponse[1_000];
        keep[0] = new LambdaResponse("f", 200, payload, "$LATEST", requestId); // warm the path
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < keep.Length; i++) keep[i] = new LambdaResponse("f", 200, payload, "$LATEST", requestId);
        long perResponse = (GC.GetAllocatedBytesForCurrentThread() - before) / keep.Length;
        Assert.That(perResponse, Is.LessThanOrEqualTo(56));
        Assert.That(keep.All(r => r.RequestId == requestId));
    }
}
