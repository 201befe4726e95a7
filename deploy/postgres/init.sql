-- One database per service (each service owns its data; none reads another's).
CREATE DATABASE crm_ingest;
CREATE DATABASE crm_contacts;
CREATE DATABASE crm_cases;
CREATE DATABASE crm_campaigns;
CREATE DATABASE crm_scoring;
