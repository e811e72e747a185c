// The floor for AotInvoke: the same HTTP call (POST .../functions/hello-world/invocations, {"hello":1}) with a bare
// HttpClient and no signature. Built with FLOOR_SHA256 (-p:Sha256=true), it also sends the body's SHA-256, the one
// hash every signature needs, so that the crypto stack is loaded as it is for signing.
#if FLOOR_SHA256
using System.Security.Cryptography;
#endif

if (args.Length != 1 || !Uri.TryCreate(args[0], UriKind.Absolute, out var endpoint))
{
    Console.Error.WriteLine("usage: AotFloor <Lambda endpoint, such as http://127.0.0.1:9001/>");
    return 2;
}

byte[] body = """{"hello":1}"""u8.ToArray();
using var http = new HttpClient();
using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, "2015-03-31/functions/hello-world/invocations"))
{
    Content = new ByteArrayContent(body),
};
#if FLOOR_SHA256
request.Headers.TryAddWithoutValidation("x-amz-content-sha256", Convert.ToHexStringLower(SHA256.HashData(body)));
#endif
using var response = await http.SendAsync(request);
Console.WriteLine(await response.Content.ReadAsStringAsync());
return response.IsSuccessStatusCode ? 0 : 1;
