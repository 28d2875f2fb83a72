-- A certificate on the host that the agent watches for expiry (`server set --agent-cert-file PATH`); NULL: none.
ALTER TABLE servers ADD COLUMN agent_cert_file TEXT;
