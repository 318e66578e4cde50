DROP TABLE provider_credentials;
DROP TABLE projects;
DROP TABLE organizations;
