/**
 * The form-encoded body of a token or device-code request.
 */
import { OAuthError } from "./oauth-errors.js";

export class Form {
  private constructor(private readonly params: URLSearchParams) {}

  static parse(body: string): Form {
    return new Form(new URLSearchParams(body));
  }

  /** The parameter's value; undefined when absent or empty. A repeated parameter is refused. */
  get(name: string): string | undefined {
    const all = this.params.getAll(name);
    if (all.length > 1) {
      throw new OAuthError(
        "invalid_request",
        90015,
        `The parameter '${name}' is duplicated in the request.`,
      );
    }
    const v = all[0];
    return v === undefined || v === "" ? undefined : v;
  }
}
