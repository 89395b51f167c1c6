import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "no-restricted-imports": "off",
    },
  },
  {
    // The data path stays free of terminal UI and CLI frameworks.
    files: ["src/{broker,protocols,policy,store,identity,tunnel,config}/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { paths: ["ink", "react", "commander"], patterns: ["**/cli/**", "**/tui/**"] },
      ],
    },
  },
);
