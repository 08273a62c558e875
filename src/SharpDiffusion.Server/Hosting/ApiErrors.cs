using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace SharpDiffusion.Server.Hosting;

/// <summary>
/// Error bodies. AUTOMATIC1111's routes answer <c>{error, detail, body, errors}</c> (its api_middleware handler), OpenAI's
/// routes <c>{error: {message, type, param, code}}</c>. Every error is JSON: clients call .json() on every response.
/// </summary>
public static class ApiErrors
{
    public static IResult A1111(int status, string error, string detail, string? body = null, JsonNode? errors = null, int? retryAfter = null) =>
        new JsonResult(status, new JsonObject
        {
            ["error"] = error,
            ["detail"] = detail,
            ["body"] = body ?? "",
            ["errors"] = errors ?? detail,
        }, retryAfter);

    public static IResult OpenAI(int status, string message, string type, string? param = null, string? code = null, int? retryAfter = null) =>
        new JsonResult(status, new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = param, ["code"] = code },
        }, retryAfter);
}

/// <summary>A JSON body with a status (and Retry-After when asked).</summary>
public sealed class JsonResult(int status, JsonNode body, int? retryAfter = null) : IResult
{
    public async Task ExecuteAsync(HttpContext context)
    {
        context.Response.StatusCode = status;
        if (retryAfter is int seconds)
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }
}
