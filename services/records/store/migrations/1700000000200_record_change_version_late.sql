-- Up Migration

-- A record change's version is taken in the statement sent with the COMMIT (store/changes.ts):
-- the tenant's version row (rec_versions) is then locked for that last round trip only, not
-- across a round trip to dbservice. The event is built and encoded in TypeScript without its
-- version (@crm/contracts/events unversionedRecordChange); that statement puts the version's field
-- before the bytes. A protobuf decoder reads fields in any order, so the result is the whole event.
--
-- The bytes of a protobuf int64 field holding a value of 0 or more: its tag (field number, wire
-- type 0: varint), then the value as a varint (7 bits a byte, least significant first, the high
-- bit set on every byte but the last).
CREATE FUNCTION crm_pb_int64_field(p_field integer, p_value bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  out bytea := '\x'::bytea;
  v bigint;
BEGIN
  IF p_field < 1 OR p_value < 0 THEN RAISE EXCEPTION 'crm_pb_int64_field: field % value % out of range', p_field, p_value; END IF;
  FOREACH v IN ARRAY ARRAY[p_field::bigint << 3, p_value] LOOP
    LOOP
      IF v < 128 THEN
        out := out || set_byte('\x00'::bytea, 0, v::integer);
        EXIT;
      END IF;
      out := out || set_byte('\x00'::bytea, 0, ((v & 127) | 128)::integer);
      v := v >> 7;
    END LOOP;
  END LOOP;
  RETURN out;
END $$;
GRANT EXECUTE ON FUNCTION crm_pb_int64_field(integer, bigint) TO crm_app;
