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

    // What a collecting fan-out keeps per usual answer besides its payload: one 64-byte object, no request id string.
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
        Assert.That(perResponse, Is.LessThanOrEqualTo(64));
        Assert.That(keep.All(r => r.RequestId == requestId));
    }
}
