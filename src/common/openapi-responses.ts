/** OpenAPI description of an error answered in plain text (the wire contract's error format). */
export function plainTextResponse(example: string) {
  return {
    description: `Plain text, e.g. ${example}`,
    content: { 'text/plain': { schema: { type: 'string', example } } },
  };
}
