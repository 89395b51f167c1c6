/**
 * The demo database: a small shop whose tables hold the kind of personal data gw is there to
 * protect (emails, phone numbers, payment card numbers, IBANs, social security numbers, and a
 * few of them again in free text). All of it is fake: names are invented, emails use the
 * reserved example.* domains, phones the 555-01xx range, cards are the networks' published
 * test numbers (Luhn-valid), IBANs the registries' example accounts.
 *
 * Plain INSERTs (no COPY), so the same script seeds any PostgreSQL-compatible server.
 */

const FIRST = [
  "Maya",
  "Liam",
  "Sofia",
  "Noah",
  "Amara",
  "Lucas",
  "Chloe",
  "Mateo",
  "Hana",
  "Elias",
  "Priya",
  "Jonas",
  "Zoe",
  "Omar",
  "Ingrid",
  "Diego",
  "Aiko",
  "Felix",
  "Leila",
  "Tomasz",
  "Nora",
  "Kwame",
  "Elena",
  "Ravi",
];
const LAST = [
  "Okafor",
  "Lindqvist",
  "Moreau",
  "Tanaka",
  "Silva",
  "Novak",
  "Fischer",
  "Haddad",
  "Kowalski",
  "Brennan",
  "Rossi",
  "Nakamura",
  "Petrov",
  "Schmidt",
  "Dubois",
  "Garcia",
  "Andersen",
  "Kim",
  "Mensah",
  "Costa",
  "Weber",
  "Singh",
  "Murphy",
  "Yilmaz",
];
const CITIES: Array<[string, string]> = [
  ["Berlin", "DE"],
  ["London", "GB"],
  ["Paris", "FR"],
  ["Amsterdam", "NL"],
  ["Madrid", "ES"],
  ["Milan", "IT"],
  ["Brussels", "BE"],
  ["Zurich", "CH"],
  ["Vienna", "AT"],
  ["Warsaw", "PL"],
  ["San Francisco", "US"],
  ["New York", "US"],
];
/** Published test card numbers (Visa, Mastercard, Amex, Discover, JCB, Diners): Luhn-valid. */
export const TEST_CARDS = [
  "4111111111111111",
  "5555555555554444",
  "378282246310005",
  "6011111111111117",
  "4242424242424242",
  "5105105105105100",
  "4012888888881881",
  "3530111333300000",
  "2223003122003222",
  "371449635398431",
  "6011000990139424",
  "3566002020360505",
  "4000056655665556",
  "5200828282828210",
  "30569309025904",
];
/** Example IBANs from the national registries (valid check digits), matching CITIES' countries. */
const IBANS: Record<string, string> = {
  DE: "DE89370400440532013000",
  GB: "GB82WEST12345698765432",
  FR: "FR1420041010050500013M02606",
  NL: "NL91ABNA0417164300",
  ES: "ES9121000418450200051332",
  IT: "IT60X0542811101000000123456",
  BE: "BE68539007547034",
  CH: "CH9300762011623852957",
  AT: "AT611904300234573201",
  PL: "PL61109010140000071219812874",
};
const PRODUCTS: Array<[string, number]> = [
  ["Espresso grinder", 189.0],
  ["Pour-over kettle", 64.5],
  ["Ceramic dripper", 24.9],
  ["Paper filters (100)", 6.5],
  ["House blend 1kg", 29.0],
  ["Single origin 250g", 14.75],
  ["Milk frother", 39.99],
  ["Travel mug", 22.0],
  ["Scale with timer", 54.0],
  ["Descaler", 9.95],
];
const STATUSES = ["paid", "shipped", "delivered", "delivered", "delivered", "refunded", "pending"];

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

const q = (s: string | null) => (s === null ? "NULL" : `'${s.replace(/'/g, "''")}'`);

export interface DemoCustomer {
  id: number;
  fullName: string;
  email: string;
  phone: string;
  cardNumber: string;
  iban: string | null;
  ssn: string | null;
  city: string;
  country: string;
}

/** The customers, deterministic (the tour and the tests refer to the first ones). */
export function demoCustomers(): DemoCustomer[] {
  return FIRST.map((first, i) => {
    const last = LAST[i]!;
    const [city, country] = CITIES[i % CITIES.length]!;
    const domain = ["example.com", "example.org", "example.net"][i % 3]!;
    const n = String(100 + ((i * 37) % 100)).slice(1);
    const phone =
      country === "US"
        ? `+1 (415) 555-01${n}`
        : country === "GB"
          ? `+44 20 7946 0${String(900 + i)}`
          : `+${[49, 33, 31, 34, 39, 32, 41, 43, 48][i % 9]} 30 5550 1${n}`;
    // SSNs only for US customers; areas 001-665 and 667-899 are issued, groups and serials non-zero.
    const ssn =
      country === "US"
        ? `${String(123 + i * 11)}-${String(10 + i)}-${String(4000 + i * 97)}`
        : null;
    return {
      id: i + 1,
      fullName: `${first} ${last}`,
      email: `${first.toLowerCase()}.${last.toLowerCase()}@${domain}`,
      phone,
      cardNumber: TEST_CARDS[i % TEST_CARDS.length]!,
      iban: IBANS[country] ?? null,
      ssn,
      city,
      country,
    };
  });
}

/** CREATE TABLE and INSERT statements for the whole demo database, as one script. */
export function demoSeedSql(): string {
  const customers = demoCustomers();
  const lines: string[] = [
    `CREATE TABLE customers (
  id          integer PRIMARY KEY,
  full_name   text NOT NULL,
  email       text NOT NULL UNIQUE,
  phone       text,
  card_number text,
  iban        text,
  ssn         text,
  city        text NOT NULL,
  country     char(2) NOT NULL,
  created_at  timestamptz NOT NULL
);`,
    `CREATE TABLE orders (
  id          integer PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers(id),
  product     text NOT NULL,
  quantity    integer NOT NULL CHECK (quantity > 0),
  total       numeric(10,2) NOT NULL,
  status      text NOT NULL,
  note        text,
  ordered_at  timestamptz NOT NULL
);`,
    "CREATE INDEX orders_customer ON orders (customer_id);",
  ];
  const base = Date.UTC(2025, 0, 6, 9, 30);
  const ts = (ms: number) => new Date(ms).toISOString();
  lines.push(
    "INSERT INTO customers (id, full_name, email, phone, card_number, iban, ssn, city, country, created_at) VALUES\n" +
      customers
        .map(
          (c) =>
            `  (${c.id}, ${q(c.fullName)}, ${q(c.email)}, ${q(c.phone)}, ${q(c.cardNumber)}, ${q(c.iban)}, ${q(c.ssn)}, ${q(c.city)}, ${q(c.country)}, ${q(ts(base + c.id * 86_400_000 * 3))})`,
        )
        .join(",\n") +
      ";",
  );
  const notes = (i: number, c: DemoCustomer): string | null => {
    if (i % 9 === 2) return `Customer asked to be called back on ${c.phone}`;
    if (i % 11 === 4) return `Refund to ${c.iban ?? "original card"} requested by ${c.email}`;
    if (i % 7 === 5) return "Leave at the door";
    return null;
  };
  const orders: string[] = [];
  for (let i = 0; i < 60; i++) {
    const c = customers[(i * 7) % customers.length]!;
    const [product, price] = PRODUCTS[(i * 3) % PRODUCTS.length]!;
    const qty = 1 + (i % 3);
    orders.push(
      `  (${i + 1}, ${c.id}, ${q(product)}, ${qty}, ${(price * qty).toFixed(2)}, ${q(STATUSES[i % STATUSES.length]!)}, ${q(notes(i, c))}, ${q(ts(base + 86_400_000 * 80 + i * 3_600_000 * 29))})`,
    );
  }
  lines.push(
    "INSERT INTO orders (id, customer_id, product, quantity, total, status, note, ordered_at) VALUES\n" +
      orders.join(",\n") +
      ";",
  );
  lines.push("ANALYZE;");
  return lines.join("\n\n") + "\n";
}
